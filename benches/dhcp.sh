#!/usr/bin/env bash
# DHCP throughput: perfdhcp against edgeprov and against Kea (memfile) in the same run, each in
# network namespaces this script creates (addresses only inside them). perfdhcp acts as a relay
# (giaddr = its own address), so every reply is a unicast. For each server it prints the highest
# DORA rate with under 1% drops, and DORAs per server CPU-second at that rate.
#
# Needs root, iproute2, perfdhcp and kea-dhcp4 (Debian: kea-admin, kea-dhcp4-server) and a
# release build: cargo build --release. Not a test: a measurement, run by hand.
#
#   sudo benches/dhcp.sh [path/to/edgeprov] [seconds per rate] [rates...]
# What cannot run is refused (exit 2) and a step that fails (a server that does not start or
# dies, perfdhcp failing or sending nothing) stops the run (exit 1), each with a message naming
# it, rather than print a result nothing measured.
set -euo pipefail

BIN=${1:-${CARGO_TARGET_DIR:-target}/release/edgeprov}
PERIOD=${2:-10}
shift $(( $# > 2 ? 2 : $# ))
RATES=${*:-"2000 4000 6000 8000 10000 12000 16000 20000"}
die() { printf 'bench dhcp: %s\n' "$*" >&2; exit 1; }
[[ "$PERIOD" =~ ^[1-9][0-9]*$ ]] || die "seconds per rate must be a positive integer, not '$PERIOD'"
for rate in $RATES; do
    [[ "$rate" =~ ^[1-9][0-9]*$ ]] || die "rates must be positive integers, not '$rate'"
done
for tool in ip perfdhcp kea-dhcp4; do
    command -v "$tool" >/dev/null || { echo "bench dhcp: $tool is missing (iproute2, kea-admin, kea-dhcp4-server)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "bench dhcp: needs root for network namespaces" >&2; exit 2; }
[ -x "$BIN" ] || { echo "bench dhcp: no edgeprov binary at $BIN (cargo build --release)" >&2; exit 2; }

P=epb$$
SRV=${P}s CLI=${P}c
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$SRV"
ip netns add "$CLI"
ip -n "$SRV" link set lo up
ip -n "$CLI" link set lo up
ip -n "$SRV" link add b0 type veth peer name b1 netns "$CLI"
ip -n "$SRV" addr add 10.90.0.1/10 dev b0
ip -n "$CLI" addr add 10.90.0.2/10 dev b1
ip -n "$SRV" link set b0 up
ip -n "$CLI" link set b1 up

# 10.64.0.0/10 holds ~4 million addresses (10.90/16, where the veths live, is left out): every DORA of a run is a new client and a new lease.
cat > "$WORK/edgeprov.toml" <<EOF
data_dir = "$WORK/edgeprov-data"
log_level = "warn"
[phone]
https_listen = ["127.0.0.1:0"]
http_listen = []
[admin]
listen = "127.0.0.1:0"
[dhcp]
enabled = true
listen = "0.0.0.0:67"
interfaces = ["b0"]
provisioning_url = "https://10.90.0.1:8443/"
[[dhcp.subnet]]
network = "10.64.0.0/10"
ranges = [["10.65.0.0", "10.89.255.255"], ["10.91.0.0", "10.127.255.254"]]
router = "10.90.0.1"
dns = ["10.90.0.1"]
lease_seconds = 86400
EOF

cat > "$WORK/kea.json" <<EOF
{ "Dhcp4": {
    "interfaces-config": { "interfaces": ["b0"], "dhcp-socket-type": "udp" },
    "lease-database": { "type": "memfile", "persist": true, "lfc-interval": 0,
                        "name": "$WORK/kea-leases.csv" },
    "valid-lifetime": 86400,
    "subnet4": [ { "id": 1, "subnet": "10.64.0.0/10",
                   "pools": [ { "pool": "10.65.0.0 - 10.89.255.255" },
                              { "pool": "10.91.0.0 - 10.127.255.254" } ],
                   "option-data": [ { "name": "routers", "data": "10.90.0.1" },
                                    { "name": "domain-name-servers", "data": "10.90.0.1" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "severity": "WARN",
                   "output_options": [ { "output": "$WORK/kea.log" } ] } ]
} }
EOF

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

start_server() {
    case $1 in
    edgeprov)
        rm -rf "$WORK/edgeprov-data"
        ip netns exec "$SRV" "$BIN" serve --config "$WORK/edgeprov.toml" 2>"$WORK/edgeprov.log" &
        SERVER_PID=$!
        for _ in $(seq 100); do
            [ -f "$WORK/edgeprov-data/listeners.json" ] && break
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        [ -f "$WORK/edgeprov-data/listeners.json" ] || ! kill -0 "$SERVER_PID" 2>/dev/null ||
            die "edgeprov is not listening after 10 s: $(tail -n 5 "$WORK/edgeprov.log")"
        ;;
    kea)
        rm -f "$WORK"/kea-leases.csv*
        KEA_PIDFILE_DIR=$WORK KEA_LOCKFILE_DIR=$WORK \
            ip netns exec "$SRV" kea-dhcp4 -c "$WORK/kea.json" >"$WORK/kea.out" 2>&1 &
        SERVER_PID=$!
        sleep 2
        ;;
    esac
    kill -0 "$SERVER_PID" 2>/dev/null ||
        die "$1 did not start: $(tail -n 5 "$WORK/$1.log" "$WORK/kea.out" 2>/dev/null)"
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# One perfdhcp run: prints "completed max_drop_percent cpu_seconds". perfdhcp's exit status says
# whether packets were dropped, which is a measurement here; a run that sent no DORA at all, or
# a server that died during it, is a failure.
run_rate() {
    local rate=$1 before after out
    before=$(cpu_ticks "$SERVER_PID")
    out=$(timeout $((PERIOD + 30)) ip netns exec "$CLI" perfdhcp -4 -r "$rate" -p "$PERIOD" -R 4000000 -W 1000000 \
        -l 10.90.0.2 10.90.0.1 2>&1 || true)
    echo "$out" > "$WORK/perfdhcp-$rate.out"
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server died at $rate DORA/s: $(tail -n 5 "$WORK"/*.log)"
    after=$(cpu_ticks "$SERVER_PID")
    awk '/Statistics for: DISCOVER-OFFER/ { ex = 1 } ex && /^sent packets:/ && $3 > 0 { ok = 1 } END { exit !ok }' <<<"$out" ||
        die "perfdhcp sent no DISCOVER at $rate/s: $(tail -n 5 <<<"$out")"
    awk -v cpu="$(( after - before ))" -v tick="$TICK" '
        /Statistics for: DISCOVER-OFFER/ { ex = "do" }
        /Statistics for: REQUEST-ACK/    { ex = "ra" }
        /^sent packets:/     { sent[ex] = $3 }
        /^received packets:/ { recv[ex] = $3 }
        END {
            drop = 0
            for (e in sent) if (sent[e] > 0) { d = 100 * (sent[e] - recv[e]) / sent[e]; if (d > drop) drop = d }
            printf "%d %.3f %.2f\n", recv["ra"], drop, cpu / tick
        }' <<<"$out"
}

for server in edgeprov kea; do
    start_server "$server"
    best=0 best_line="none under 1% drops"
    for rate in $RATES; do
        line=$(run_rate "$rate")
        read -r completed drop cpu <<<"$line"
        per_cpu=$(awk -v c="$completed" -v s="$cpu" 'BEGIN { printf "%.0f", (s > 0 ? c / s : 0) }')
        printf '%-9s rate %6s/s: %8s DORAs, max drop %6s%%, server CPU %6ss, %7s DORA/CPU-s\n' \
            "$server" "$rate" "$completed" "$drop" "$cpu" "$per_cpu"
        if awk -v d="$drop" 'BEGIN { exit !(d < 1) }'; then
            best=$rate
            best_line="$rate DORA/s, $per_cpu DORA per server CPU-second"
        else
            break
        fi
    done
    echo "RESULT $server: highest rate under 1% drops: $best_line"
    stop_server
done
