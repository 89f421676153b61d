#!/usr/bin/env bash
# Checks the systemd unit: `systemd-analyze verify` finds nothing, and the offline security
# analysis scores 2.0 or lower ("OK"). The unit is checked as shipped, with ExecStart pointed at
# the built binary (verify wants the program to exist).
#   cargo build && bash tests/systemd-unit.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${EDGEPROV_BIN:-$top/target/debug/edgeprov}
command -v systemd-analyze >/dev/null || { echo "systemd-unit: systemd-analyze is missing (apt-get install systemd)"; exit 2; }
[ -x "$bin" ] || { echo "systemd-unit: build first (cargo build)"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s#/usr/bin/edgeprov#$bin#" "$top/systemd/edgeprov.service" > "$work/edgeprov.service"
out=$(systemd-analyze verify --man=no "$work/edgeprov.service" 2>&1 || true)
# A sandbox without a running systemd may not know the user; that is the package's job.
out=$(grep -v "edgeprov.*User=\|Failed to .*user" <<<"$out" || true)
if [ -n "$out" ]; then echo "systemd-unit: verify found problems:"; echo "$out"; exit 1; fi
echo "ok: systemd-analyze verify"
score=$(systemd-analyze security --offline=true "$work/edgeprov.service" 2>/dev/null | awk '/Overall exposure level/ { print $(NF-2) }')
echo "systemd-analyze security --offline=true: exposure $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || { echo "systemd-unit: exposure above 2.0"; exit 1; }
echo "ok: exposure $score <= 2.0"
