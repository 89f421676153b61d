#!/usr/bin/env bash
# Authoritative A+SRV throughput of edgeprov's DNS responder against dnsmasq serving the same
# records, in the same run, on loopback. Prints queries per second and queries per server
# CPU-second (utime+stime from /proc/<pid>/stat before and after) for both.
#
# Needs: apt-get install dnsperf dnsmasq-base   (this script installs nothing)
#        a release build: cargo build --release   (or EDGEPROV_BIN=/path/to/edgeprov)
# Usage: benches/dns.sh [seconds per server, default 10]
set -euo pipefail

SECS=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${EDGEPROV_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/edgeprov}
EP_PORT=${EP_PORT:-15353}
DM_PORT=${DM_PORT:-15354}
HTTPS_PORT=18443

for tool in dnsperf dnsmasq; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install dnsperf dnsmasq-base" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "no edgeprov binary at $BIN: cargo build --release" >&2; exit 2; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/queries.txt" <<Q
sip.prov.example.lan A
_avaya-ep-config._tcp.prov.example.lan SRV
Q

cat > "$WORK/edgeprov.toml" <<T
data_dir = "$WORK/data"
log_level = "warn"
[phone]
https_listen = ["127.0.0.1:$HTTPS_PORT"]
http_listen = []
[admin]
listen = "127.0.0.1:0"
[pki]
server_names = ["prov.example.lan", "127.0.0.1"]
[dns]
listen = ["127.0.0.1:$EP_PORT"]
domain = "prov.example.lan"
rate_limit = 0
[[dns.record]]
name = "sip.prov.example.lan"
type = "A"
value = "10.0.0.10"
T

cpu_ticks() { # utime + stime of a process, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

wait_for() { # until the server answers
  for _ in $(seq 100); do
    if dig +time=1 +tries=1 @127.0.0.1 -p "$1" sip.prov.example.lan A 2>/dev/null | grep -q 10.0.0.10; then return 0; fi
    sleep 0.1
  done
  echo "server on port $1 did not answer" >&2; exit 1
}

run() { # name port pid
  local name=$1 port=$2 pid=$3 before after out qps cpu
  wait_for "$port"
  before=$(cpu_ticks "$pid")
  out=$(dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -l "$SECS" -c 4 -q 200 2>&1)
  after=$(cpu_ticks "$pid")
  qps=$(awk '/Queries per second/ { print $4 }' <<<"$out")
  local done lost
  done=$(awk '/Queries completed/ { print $3 }' <<<"$out")
  lost=$(awk '/Queries lost/ { print $3 }' <<<"$out")
  cpu=$(awk -v a="$after" -v b="$before" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (a - b) / hz }')
  awk -v n="$name" -v q="$qps" -v d="$done" -v l="$lost" -v c="$cpu" 'BEGIN {
    printf "%-9s %12.0f q/s   %8s done  %6s lost   %6.2f CPU-s   %10.0f q per CPU-s\n", n, q, d, l, c, (c > 0 ? d / c : 0) }'
}

"$BIN" serve --config "$WORK/edgeprov.toml" 2>"$WORK/edgeprov.log" &
PIDS+=($!)
EP_PID=$!

dnsmasq -k -C /dev/null --no-resolv --no-hosts --user="$(id -un)" \
  --listen-address=127.0.0.1 --bind-interfaces -p "$DM_PORT" --log-facility=/dev/null \
  --host-record=sip.prov.example.lan,10.0.0.10 --host-record=prov.example.lan,127.0.0.1 \
  --srv-host=_avaya-ep-config._tcp.prov.example.lan,prov.example.lan,$HTTPS_PORT,0,0 \
  2>"$WORK/dnsmasq.log" &
PIDS+=($!)
DM_PID=$!

echo "dnsperf -l $SECS -c 4 -q 200, queries: A sip + SRV _avaya-ep-config._tcp, loopback"
run edgeprov "$EP_PORT" "$EP_PID"
run dnsmasq "$DM_PORT" "$DM_PID"
