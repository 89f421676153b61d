#!/usr/bin/env bash
# benches/dns.sh fails loudly when a step fails, and leaves nothing behind: an edgeprov that does
# not start, a dnsperf that fails and a dnsperf that measures nothing (stand-ins first on PATH
# or as EDGEPROV_BIN) each make the bench exit 1 with a message naming what failed, print no
# figures, and leave no process or work directory of its run. Loopback only, a few seconds.
#   cargo build && bash tests/bench-dns.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${EDGEPROV_BIN:-$top/target/debug/edgeprov}
command -v dig >/dev/null || { echo "bench-dns: dig is missing (apt-get install bind9-dnsutils)"; exit 2; }
[ -x "$bin" ] || { echo "bench-dns: build first (cargo build)"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin" "$work/tmp"

stand_in() { # name body: a script on the stand-ins' PATH
    printf '#!/bin/bash\n%s\n' "$2" >"$work/bin/$1"
    chmod +x "$work/bin/$1"
}
# dnsmasq is not what these cases are about: a stand-in that just stays up (under its own path,
# so a leftover shows).
stand_in dnsmasq 'exec -a "$0" sleep 120'
# Nor is dnsperf in the first case, which stops before it: a stand-in, so the case does not
# depend on dnsperf being installed (a clean machine has none), that fails if it is reached.
stand_in dnsperf 'echo "dnsperf ran although edgeprov did not start (stand-in)"; exit 1'

fail() {
    echo "bench-dns: $*"
    echo "--- stderr of the bench"
    cat "$work/err"
    exit 1
}

# expect CASE MESSAGE [env...]: the bench, run with the stand-ins, exits 1 naming MESSAGE.
expect() {
    local case=$1 message=$2 rc=0
    shift 2
    env PATH="$work/bin:$PATH" TMPDIR="$work/tmp" EDGEPROV_BIN="$bin" \
        EP_PORT=25383 DM_PORT=25384 HTTPS_PORT=28483 "$@" \
        timeout 60 bash "$top/benches/dns.sh" 1 >"$work/out" 2>"$work/err" || rc=$?
    [ "$rc" = 1 ] || fail "$case: exit status $rc, not 1"
    grep -qF "$message" "$work/err" || fail "$case: the failure does not say: $message"
    if grep -qE '^(edgeprov|dnsmasq) .* q/s' "$work/out"; then fail "$case: figures were printed: $(cat "$work/out")"; fi
    [ -z "$(ls -A "$work/tmp")" ] || fail "$case: left its work directory behind"
    if pgrep -f "$work/" >/dev/null; then fail "$case: left processes behind: $(pgrep -af "$work/")"; fi
    echo "ok: $case"
}

printf '#!/bin/sh\necho "edgeprov: cannot listen (stand-in)" >&2\nexit 1\n' >"$work/edgeprov"
chmod +x "$work/edgeprov"
expect "an edgeprov that does not start" \
    "edgeprov did not start: edgeprov: cannot listen (stand-in)" EDGEPROV_BIN="$work/edgeprov"

stand_in dnsperf 'echo "dnsperf: cannot open socket (stand-in)"; exit 1'
expect "a dnsperf that fails" \
    "dnsperf against edgeprov failed (exit 1): dnsperf: cannot open socket (stand-in)"

stand_in dnsperf 'echo "DNS Performance Testing Tool (stand-in)"; exit 0'
expect "a dnsperf that measures nothing" \
    "dnsperf against edgeprov completed no queries: DNS Performance Testing Tool (stand-in)"
