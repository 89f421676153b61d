#!/usr/bin/env bash
# Authoritative A+SRV throughput of edgeprov's DNS responder against dnsmasq serving the same
# records, in the same run, on loopback. Prints queries per second and queries per server
# CPU-second (utime+stime from /proc/<pid>/stat before and after) for both.
#
# Needs: apt-get install dnsperf dnsmasq-base bind9-dnsutils   (this script installs nothing)
#        a release build: cargo build --release   (or EDGEPROV_BIN=/path/to/edgeprov)
# Usage: benches/dns.sh [seconds per server, default 10]
#        RATE_LIMIT=N sets edgeprov's dns.rate_limit (default 0: off). With it on, every UDP
#        query passes the per-client budget shared by all sockets and TCP (a mutex); a limit
#        far above the rate measured (RATE_LIMIT=1000000000) measures what that costs without
#        limiting anything (docs/performance.md, DNS).
# A step that fails (a server that does not start or dies, dnsperf failing or reporting nothing)
# stops the run non-zero with a message naming it, and prints no figures for it
# (tests/bench-dns.sh).
set -euo pipefail

SECS=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${EDGEPROV_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/edgeprov}
EP_PORT=${EP_PORT:-15353}
DM_PORT=${DM_PORT:-15354}
HTTPS_PORT=${HTTPS_PORT:-18443}
RATE_LIMIT=${RATE_LIMIT:-0}

die() { printf 'bench dns: %s\n' "$*" >&2; exit 1; }

[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || die "seconds per server must be a positive integer, not '$SECS'"
[[ "$RATE_LIMIT" =~ ^[0-9]+$ ]] || die "RATE_LIMIT must be a whole number, not '$RATE_LIMIT'"
for tool in dnsperf dnsmasq dig; do
  command -v "$tool" >/dev/null || { echo "bench dns: missing $tool: apt-get install dnsperf dnsmasq-base bind9-dnsutils" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "bench dns: no edgeprov binary at $BIN: cargo build --release" >&2; exit 2; }

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
rate_limit = $RATE_LIMIT
[[dns.record]]
name = "sip.prov.example.lan"
type = "A"
value = "10.0.0.10"
T

cpu_ticks() { # utime + stime of a process, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

wait_for() { # name port pid log: until the server answers, or it exits
  for _ in $(seq 100); do
    kill -0 "$3" 2>/dev/null || die "$1 did not start: $(tail -n 5 "$4")"
    if dig +time=1 +tries=1 @127.0.0.1 -p "$2" sip.prov.example.lan A 2>/dev/null | grep -q 10.0.0.10; then return 0; fi
    sleep 0.1
  done
  die "$1 did not answer on 127.0.0.1:$2 within 10 s: $(tail -n 5 "$4")"
}

run() { # name port pid log
  local name=$1 port=$2 pid=$3 log=$4 before after out qps cpu rc=0
  wait_for "$name" "$port" "$pid" "$log"
  before=$(cpu_ticks "$pid")
  out=$(timeout $((SECS + 30)) dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -l "$SECS" -c 4 -q 200 2>&1) || rc=$?
  # A server that died during the run would be measured as lost queries.
  kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died during the run: $(tail -n 5 "$log")"
  after=$(cpu_ticks "$pid")
  [ "$rc" = 0 ] || die "dnsperf against $name failed (exit $rc): $(tail -n 5 <<<"$out")"
  qps=$(awk '/Queries per second/ { print $4 }' <<<"$out")
  local done lost
  done=$(awk '/Queries completed/ { print $3 }' <<<"$out")
  lost=$(awk '/Queries lost/ { print $3 }' <<<"$out")
  [ -n "$qps" ] && [ "${done:-0}" -gt 0 ] 2>/dev/null ||
    die "dnsperf against $name completed no queries: $(tail -n 5 <<<"$out")"
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

echo "dnsperf -l $SECS -c 4 -q 200, queries: A sip + SRV _avaya-ep-config._tcp, loopback, edgeprov dns.rate_limit $RATE_LIMIT"
run edgeprov "$EP_PORT" "$EP_PID" "$WORK/edgeprov.log"
run dnsmasq "$DM_PORT" "$DM_PID" "$WORK/dnsmasq.log"
