#!/usr/bin/env bash
# Boot storm against edgeprov and against nginx, on this machine, in one run.
#
# Both servers get the same CA (edgeprov's own), an ECDSA P-256 server certificate from it,
# mutual TLS with the client certificate required for the per-device file, and the same files:
# edgeprov renders them from the emitted inventory, nginx serves the emitted static copies (and
# checks, as edgeprov does, that the certificate's CN is the MAC the per-device file is for).
# The same storm (`edgeprov storm`) runs against each with TLS 1.3 and TLS 1.2; server CPU is
# read from /proc/PID/stat (utime+stime of edgeprov, or of the nginx master and its workers).
#
# Usage: benches/storm-vs-nginx.sh            (as root if nginx or jq must be installed)
# Tunables (environment): PHONES=10000 CONCURRENCY=64 DURATION=20 VENDOR=avaya
#   NGINX_PORT=28443 EDGEPROV_BIN=path (skips the release build) KEEP=1 (keep the work dir)
#   RESUME=1 (a connection per file, each after the first resuming the phone's TLS session)
#   ROUNDS=1 (rounds of the four storms, interleaved: edgeprov and nginx take turns, so a slow
#   moment of the machine falls on both; the ratios reported are the medians of the rounds')
set -euo pipefail

PHONES=${PHONES:-10000}
CONCURRENCY=${CONCURRENCY:-64}
DURATION=${DURATION:-20}
VENDOR=${VENDOR:-avaya}
NGINX_PORT=${NGINX_PORT:-28443}
ROUNDS=${ROUNDS:-1}
[[ "$ROUNDS" =~ ^[1-9]$ ]] || { echo "storm-vs-nginx: ROUNDS must be 1 to 9, not '$ROUNDS'" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'storm-vs-nginx: %s\n' "$*" >&2; exit 1; }

# --- tools ------------------------------------------------------------------------------------
need_pkgs=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx)
command -v jq >/dev/null || need_pkgs+=(jq)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v curl >/dev/null || need_pkgs+=(curl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${need_pkgs[*]}: install them (apt-get install ${need_pkgs[*]}) or run as root"
    log "installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -n "${EDGEPROV_BIN:-}" ]; then
    BIN=$EDGEPROV_BIN
else
    log "building edgeprov (release)"
    (cd "$ROOT" && cargo build --release --quiet)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/edgeprov
fi
[ -x "$BIN" ] || die "no edgeprov binary at $BIN"

WORK=$(mktemp -d /tmp/storm-vs-nginx.XXXXXX)
EDGEPROV_PID=
NGINX_PID=
cleanup() {
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    [ -n "$EDGEPROV_PID" ] && kill "$EDGEPROV_PID" 2>/dev/null && wait "$EDGEPROV_PID" 2>/dev/null
    if [ -n "${KEEP:-}" ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- measuring ----------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
# CPU ticks (user+system) of the given pids and their live children.
cpu_ticks() {
    local total=0 pid child
    for pid in "$@"; do
        for child in $pid $(pgrep -P "$pid" || true); do
            [ -r "/proc/$child/stat" ] || continue
            # Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
            total=$((total + $(sed 's/.*) //' "/proc/$child/stat" | awk '{print $12 + $13}')))
        done
    done
    echo "$total"
}
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

# --- edgeprov -----------------------------------------------------------------------------------
# Every simulated phone connects from 127.0.0.1, and one address may hold at most
# phone.max_connections_per_address connections (512 by default). The 80 % storm opens
# CONCURRENCY × 4 at once, so above 128 the per-address limit is turned off (nginx has none).
PER_ADDRESS=""
if (( CONCURRENCY * 4 > 512 )); then PER_ADDRESS="max_connections_per_address = 0"; fi
cat >"$WORK/edgeprov.toml" <<EOF
data_dir = "$WORK/data"
log_level = "warn"
[phone]
https_listen = ["127.0.0.1:0"]
http_listen = []
$PER_ADDRESS
[admin]
listen = "127.0.0.1:0"
EOF

start_edgeprov() {
    rm -f "$WORK/data/listeners.json"
    local t0
    t0=$(date +%s%N)
    "$BIN" serve --config "$WORK/edgeprov.toml" 2>>"$WORK/edgeprov.log" &
    EDGEPROV_PID=$!
    for _ in $(seq 1 600); do
        [ -s "$WORK/data/listeners.json" ] && break
        sleep 0.01
    done
    [ -s "$WORK/data/listeners.json" ] || die "edgeprov did not start: $(cat "$WORK/edgeprov.log")"
    READY_MS=$((($(date +%s%N) - t0) / 1000000))
    EDGEPROV_URL="https://$(jq -r '.phone_https[0]' "$WORK/data/listeners.json")"
    ADMIN=$(jq -r '.admin' "$WORK/data/listeners.json")
}
stop_edgeprov() {
    kill "$EDGEPROV_PID" && wait "$EDGEPROV_PID" || true
    EDGEPROV_PID=
}

log "starting edgeprov"
start_edgeprov
CA=$WORK/data/pki/ca.crt
CA_KEY=$WORK/data/pki/ca.key

log "emitting $PHONES $VENDOR phones (inventory and static files)"
"$BIN" storm --vendor "$VENDOR" --phones "$PHONES" \
    --emit-inventory "$WORK/inventory.csv" --emit-static "$WORK/static"

log "loading the inventory into edgeprov"
if "$BIN" device import --help >/dev/null 2>&1; then
    "$BIN" --config "$WORK/edgeprov.toml" device import --create-sites "$WORK/inventory.csv" >/dev/null
else
    # No importer in this build: one POST per device through the admin API, eight at a time.
    TOKEN=$(cat "$WORK/data/admin.token")
    awk -F, -v url="https://$ADMIN/api/v1/devices" -v token="$TOKEN" -v ca="$CA" '
        NR == 1 { for (i = 1; i <= NF; i++) head[i] = $i; next }
        {
            fixed = ""; params = ""; secrets = ""
            for (i = 1; i <= NF; i++) {
                pair = sprintf("\"%s\":\"%s\"", head[i], $i)
                if (i <= 6) fixed = fixed pair ","
                else if (head[i] ~ /^secret:/) {
                    secrets = secrets (secrets == "" ? "" : ",") sprintf("\"%s\":\"%s\"", substr(head[i], 8), $i)
                } else params = params (params == "" ? "" : ",") pair
            }
            if (NR > 2) print "next"
            printf "url = \"%s\"\ncacert = \"%s\"\nheader = \"Authorization: Bearer %s\"\n", url, ca, token
            printf "header = \"Content-Type: application/json\"\noutput = \"/dev/null\"\n"
            printf "write-out = \"%%{http_code}\\n\"\n"
            gsub(/"/, "\\\"", fixed); p = params; gsub(/"/, "\\\"", p); s = secrets; gsub(/"/, "\\\"", s)
            printf "data = \"{%s\\\"params\\\":{%s},\\\"secrets\\\":{%s}}\"\n", fixed, p, s
        }' "$WORK/inventory.csv" >"$WORK/load.curl"
    curl -s --no-progress-meter --parallel --parallel-max 8 -K "$WORK/load.curl" >"$WORK/load.codes"
    created=$(grep -c '^201$' "$WORK/load.codes" || true)
    [ "$created" = "$PHONES" ] || die "loaded $created of $PHONES devices: $(sort "$WORK/load.codes" | uniq -c | tr '\n' ' ')"
fi

# Readiness with the inventory in the store, and idle memory after a restart.
stop_edgeprov
start_edgeprov
sleep 1
IDLE_RSS_KIB=$(kib "$EDGEPROV_PID" VmRSS)

# --- nginx --------------------------------------------------------------------------------------
log "server certificate for nginx (ECDSA P-256, from the same CA)"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/nginx.key" 2>/dev/null
openssl req -new -key "$WORK/nginx.key" -subj "/O=edgeprov/CN=localhost" -out "$WORK/nginx.csr"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' >"$WORK/nginx.ext"
openssl x509 -req -in "$WORK/nginx.csr" -CA "$CA" -CAkey "$CA_KEY" -CAcreateserial \
    -days 2 -sha256 -extfile "$WORK/nginx.ext" -out "$WORK/nginx.crt" 2>/dev/null

mkdir -p "$WORK/nginx-tmp"
cat >"$WORK/nginx.conf" <<EOF
$(if [ "$(id -u)" = 0 ]; then echo "user root;"; fi)
worker_processes auto;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    default_type text/plain;
    # The MAC a client certificate speaks for (its CN), as edgeprov reads it.
    map \$ssl_client_s_dn \$client_mac {
        default "";
        "~CN=(?<cn>[0-9a-f]{12})" \$cn;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $WORK/nginx.crt;
        ssl_certificate_key $WORK/nginx.key;
        ssl_client_certificate $CA;
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        root $WORK/static;
        # A per-device file only for the device that proved it is that device.
        location ~ "^/(?<file_mac>[0-9a-f]{12})(-phone)?\.(txt|cfg)\$" {
            if (\$client_mac != \$file_mac) { return 403; }
            add_header Cache-Control no-store;
        }
    }
}
EOF
if (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null; then
    die "127.0.0.1:$NGINX_PORT is already in use: stop what listens there or set NGINX_PORT"
fi
log "starting nginx on 127.0.0.1:$NGINX_PORT"
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" 2>>"$WORK/nginx-error.log" &
NGINX_PID=$!
for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null && break
    sleep 0.01
done
(exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null && kill -0 "$NGINX_PID" 2>/dev/null ||
    die "nginx did not start: $(cat "$WORK/nginx-error.log")"
NGINX_URL="https://127.0.0.1:$NGINX_PORT"

# --- the storms -----------------------------------------------------------------------------------
# run NAME URL PIDS TLS [extra storm flags...]: one storm; prints a result line (TSV) on stdout,
# its first field the round ($ROUND).
run() {
    local name=$1 url=$2 pids=$3 tls=$4
    shift 4
    local before after json
    before=$(cpu_ticks $pids)
    json=$("$BIN" storm --json --target "$url" --vendor "$VENDOR" --phones "$PHONES" \
        --concurrency "${RUN_CONCURRENCY:-$CONCURRENCY}" --duration "$DURATION" --tls "$tls" \
        --ca-cert "$CA" --ca-key "$CA_KEY" "$@" || true)
    after=$(cpu_ticks $pids)
    # A server that died during the storm would be measured as failing phones.
    local pid
    for pid in $pids; do
        kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died during the storm"
    done
    [ -n "$json" ] || die "$name: the storm printed no report"
    echo "$json" >>"$WORK/reports.jsonl"
    local cpu_s
    cpu_s=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
    jq -r --arg round "$ROUND" --arg name "$name" --arg tls "$tls" --arg cpu "$cpu_s" '
        [$round, $name, $tls, .phones, .ok, .errors, .phones_per_s, .latency_ms.p99, $cpu,
         (if ($cpu | tonumber) > 0 then (.ok / ($cpu | tonumber) | floor) else 0 end)] | @tsv' \
        <<<"$json"
}

# The whole boot sequence when this edgeprov serves it; a build that does not yet generate the
# common files is measured on the per-device file alone, against both servers alike.
SEQUENCE=()
if ! "$BIN" storm --target "$EDGEPROV_URL" --vendor "$VENDOR" --phones 1 --ca-cert "$CA" \
    --ca-key "$CA_KEY" >/dev/null 2>&1; then
    log "this edgeprov does not serve the whole $VENDOR sequence: measuring the per-device file only"
    SEQUENCE=(--device-file-only)
fi

# Phones that close after every file and resume their session on the next connection.
CONNECTIONS=()
if [ -n "${RESUME:-}" ]; then
    CONNECTIONS=(--resume-sessions)
fi

RESULTS=$WORK/results.tsv
: >"$RESULTS"
for ROUND in $(seq 1 "$ROUNDS"); do
    for tls in 1.3 1.2; do
        log "round $ROUND, TLS $tls: edgeprov"
        run edgeprov "$EDGEPROV_URL" "$EDGEPROV_PID" "$tls" "${SEQUENCE[@]}" "${CONNECTIONS[@]}" >>"$RESULTS"
        log "round $ROUND, TLS $tls: nginx"
        run nginx "$NGINX_URL" "$NGINX_PID" "$tls" "${SEQUENCE[@]}" "${CONNECTIONS[@]}" >>"$RESULTS"
    done
done

# median: the middle of the numbers on stdin (the mean of the middle two for an even count).
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# p99 at 80% of edgeprov's TLS 1.3 peak (the median of the rounds), phones arriving steadily.
PEAK=$(awk -F'\t' '$2 == "edgeprov" && $3 == "1.3" { print $7 }' "$RESULTS" | median)
RATE=$(awk -v p="$PEAK" 'BEGIN { printf "%d", p * 0.8 }')
if [ "$RATE" -gt 0 ]; then
    log "TLS 1.3: edgeprov at 80% of peak ($RATE phones/s)"
    ROUND=- RUN_CONCURRENCY=$((CONCURRENCY * 4)) run "edgeprov@80%" "$EDGEPROV_URL" \
        "$EDGEPROV_PID" 1.3 --rate "$RATE" "${SEQUENCE[@]}" "${CONNECTIONS[@]}" >>"$RESULTS"
fi
PEAK_RSS_KIB=$(kib "$EDGEPROV_PID" VmHWM)

# --- report -----------------------------------------------------------------------------------
echo
echo "storm-vs-nginx: $PHONES $VENDOR phones, concurrency $CONCURRENCY, $(nproc) cores shared with the simulator"
echo "files per phone: ${SEQUENCE[*]:-the whole boot sequence}"
if [ -n "${RESUME:-}" ]; then
    echo "connections: one per file, the first a full handshake, the others resumed"
fi
echo "edgeprov $("$BIN" --version | awk '{print $2}'), $("$NGINX" -v 2>&1 | sed 's/.*: //'), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
printf '%-5s %-14s %-4s %7s %7s %6s %10s %9s %9s %14s\n' round server tls phones ok errors phones/s p99_ms cpu_s phones/cpu_s
awk -F'\t' '{ printf "%-5s %-14s %-4s %7d %7d %6d %10.0f %9.2f %9.2f %14d\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$RESULTS"
echo
# ratio TLS FIELD: edgeprov/nginx of a result field, one per round, on stdout.
ratio() {
    awk -F'\t' -v tls="$1" -v f="$2" '
        $3 == tls && $2 == "edgeprov" { e[$1] = $f }
        $3 == tls && $2 == "nginx" { n[$1] = $f }
        END { for (r in e) if (n[r] > 0) printf "%.2f\n", e[r] / n[r] }' "$RESULTS"
}
for tls in 1.3 1.2; do
    cpu=$(ratio "$tls" 10 | median)
    rate=$(ratio "$tls" 7 | median)
    [ -n "$cpu" ] && [ -n "$rate" ] || continue
    rounds=""
    if [ "$ROUNDS" -gt 1 ]; then
        rounds=" (medians of $ROUNDS rounds; per server CPU-second by round: $(ratio "$tls" 10 | sort -g | tr '\n' ' ' | sed 's/ $//'))"
    fi
    printf 'TLS %s: edgeprov/nginx phones per server CPU-second %.2fx, phones/s %.2fx%s\n' \
        "$tls" "$cpu" "$rate" "$rounds"
done
echo "edgeprov: ready ${READY_MS} ms after start with $PHONES devices; idle RSS $((IDLE_RSS_KIB / 1024)) MiB; peak RSS over the storms $((PEAK_RSS_KIB / 1024)) MiB"
