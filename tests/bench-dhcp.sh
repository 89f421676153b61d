#!/usr/bin/env bash
# benches/dhcp.sh fails loudly when perfdhcp measures nothing: given a perfdhcp that fails (a
# stand-in first on PATH), the bench exits 1 naming perfdhcp and its error instead of reporting
# the rate as one "under 1% drops", prints no result, and leaves no process, namespace or work
# directory of its run. Needs root and iproute2 (the bench's own network namespaces); a few
# seconds.
#   cargo build && bash tests/bench-dhcp.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${EDGEPROV_BIN:-$top/target/debug/edgeprov}
command -v ip >/dev/null || { echo "bench-dhcp: ip is missing (apt-get install iproute2)"; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench-dhcp: needs root for the bench's network namespaces"; exit 2; }
[ -x "$bin" ] || { echo "bench-dhcp: build first (cargo build)"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin" "$work/tmp"
printf '#!/bin/sh\necho "perfdhcp: cannot open socket (stand-in)" >&2\nexit 1\n' >"$work/bin/perfdhcp"
# Kea is not reached: the bench stops at edgeprov's first rate.
printf '#!/bin/sh\nexit 1\n' >"$work/bin/kea-dhcp4"
chmod +x "$work/bin/perfdhcp" "$work/bin/kea-dhcp4"

fail() {
    echo "bench-dhcp: $*"
    echo "--- stderr of the bench"
    cat "$work/err"
    exit 1
}
rc=0
PATH="$work/bin:$PATH" TMPDIR="$work/tmp" timeout 60 bash "$top/benches/dhcp.sh" "$bin" 1 500 \
    >"$work/out" 2>"$work/err" || rc=$?
[ "$rc" = 1 ] || fail "exit status $rc, not 1"
grep -qF "perfdhcp sent no DISCOVER at 500/s: perfdhcp: cannot open socket (stand-in)" "$work/err" ||
    fail "the failure does not name perfdhcp and its error"
if grep -q 'RESULT' "$work/out"; then fail "a result was printed: $(cat "$work/out")"; fi
[ -z "$(ls -A "$work/tmp")" ] || fail "left its work directory behind"
if pgrep -f "$work/" >/dev/null; then fail "left processes behind: $(pgrep -af "$work/")"; fi
if ip netns list | grep -q '^epb'; then fail "left network namespaces behind: $(ip netns list)"; fi
echo "ok: bench dhcp fails loudly and cleans up when perfdhcp fails"
