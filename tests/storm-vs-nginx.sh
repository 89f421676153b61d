#!/usr/bin/env bash
# benches/storm-vs-nginx.sh fails loudly when a step fails, and leaves nothing behind: given an
# nginx that cannot start (a stand-in first on PATH that exits 1), the bench exits 1 naming
# nginx and its error, runs no storm, prints no report, and leaves no process or work directory
# of its run. Small and loopback only (20 phones are emitted and loaded into edgeprov).
#   cargo build && bash tests/storm-vs-nginx.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${EDGEPROV_BIN:-$top/target/debug/edgeprov}
for tool in jq openssl curl; do
    command -v "$tool" >/dev/null || { echo "storm-vs-nginx: $tool is missing (apt-get install $tool)"; exit 2; }
done
[ -x "$bin" ] || { echo "storm-vs-nginx: build first (cargo build)"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir "$work/bin"
printf '#!/bin/sh\necho "nginx: [emerg] cannot start (stand-in)" >&2\nexit 1\n' >"$work/bin/nginx"
chmod +x "$work/bin/nginx"
leftovers() {
    ls -d /tmp/storm-vs-nginx.* 2>/dev/null || true
    pgrep -f 'storm-vs-nginx\.[A-Za-z0-9]{6}/' || true
}
before=$(leftovers)
rc=0
PATH="$work/bin:$PATH" EDGEPROV_BIN="$bin" PHONES=20 CONCURRENCY=2 DURATION=2 NGINX_PORT=28562 \
    timeout 120 bash "$top/benches/storm-vs-nginx.sh" >"$work/out" 2>"$work/err" || rc=$?

fail() {
    echo "storm-vs-nginx: $*"
    echo "--- stderr of the bench"
    cat "$work/err"
    exit 1
}
[ "$rc" = 1 ] || fail "exit status $rc, not 1"
grep -q 'nginx did not start: nginx: \[emerg\] cannot start (stand-in)' "$work/err" ||
    fail "the failure does not name nginx and its error"
if grep -q '^== round' "$work/err"; then fail "storms ran against an nginx that did not start"; fi
[ ! -s "$work/out" ] || fail "a report was printed: $(cat "$work/out")"
[ "$(leftovers)" = "$before" ] || fail "left behind: $(leftovers)"
echo "ok: storm-vs-nginx fails loudly and cleans up when nginx does not start"
