#!/usr/bin/env bash
# 100 concurrent TLS downloads of a 50 MB firmware image from edgeprov and from nginx serving
# the same file, in the same run, on loopback. Prints aggregate MB/s (bytes received by all
# clients / wall time from first request to last byte) and peak RSS (VmHWM; nginx: master plus
# workers) for both. edgeprov's cache is warmed first (one fetch from nginx's plain-HTTP port,
# which plays the vendor), so both serve the file from the page cache.
#
# Goal: edgeprov >= 0.9x nginx's throughput, with its peak RSS under 64 MB.
#
# Needs: nginx, curl, openssl (this script installs nothing)
#        a release build: cargo build --release   (or EDGEPROV_BIN=/path/to/edgeprov)
# Usage: benches/firmware.sh [concurrent downloads, default 100] [image MB, default 50]
#        ORDER="nginx edgeprov" to swap the order (or repeat names for more rounds)
# A step that fails (a server that does not start or dies, a download that fails or comes up
# short) stops the run non-zero with a message naming it, and prints no figures for it
# (tests/bench-firmware.sh).
set -euo pipefail

N=${1:-100}
MB=${2:-50}
CLIENTS=${CLIENTS:-4}          # curl processes sharing the N downloads (--parallel each)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${EDGEPROV_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/edgeprov}
EP_PORT=${EP_PORT:-18443}
NG_PORT=${NG_PORT:-18444}
UP_PORT=${UP_PORT:-18081}
FILE=FW_BENCH.bin

die() { printf 'bench firmware: %s\n' "$*" >&2; exit 1; }

[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "concurrent downloads must be a positive integer, not '$N'"
[[ "$MB" =~ ^[1-9][0-9]*$ ]] || die "image MB must be a positive integer, not '$MB'"
[[ "$CLIENTS" =~ ^[1-9][0-9]*$ ]] || die "CLIENTS must be a positive integer, not '$CLIENTS'"
for server in ${ORDER:-edgeprov nginx}; do
  case $server in edgeprov | nginx) ;; *) die "ORDER names '$server': only edgeprov and nginx" ;; esac
done
for tool in nginx curl openssl; do
  command -v "$tool" >/dev/null || { echo "bench firmware: missing $tool" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "bench firmware: no edgeprov binary at $BIN: cargo build --release" >&2; exit 2; }

WORK=$(mktemp -d)
PIDS=()
CURLS=()   # download clients still running
cleanup() {
  for p in "${PIDS[@]}" "${CURLS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/www" "$WORK/nginx"
chmod 755 "$WORK" "$WORK/www"   # nginx workers may run as another user
head -c "$((MB * 1024 * 1024))" /dev/urandom > "$WORK/www/$FILE"
chmod 644 "$WORK/www/$FILE"
SHA=$(sha256sum "$WORK/www/$FILE" | cut -d' ' -f1)
SIZE=$(stat -c %s "$WORK/www/$FILE")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -keyout "$WORK/nginx/key.pem" -out "$WORK/nginx/cert.pem" 2>/dev/null

cat > "$WORK/nginx/nginx.conf" <<C
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $WORK/nginx/tmp;
  proxy_temp_path $WORK/nginx/tmp;
  fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp;
  scgi_temp_path $WORK/nginx/tmp;
  server {
    listen 127.0.0.1:$NG_PORT ssl;
    ssl_certificate $WORK/nginx/cert.pem;
    ssl_certificate_key $WORK/nginx/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $WORK/www;
  }
  server {
    listen 127.0.0.1:$UP_PORT;
    root $WORK/www;
  }
}
C

cat > "$WORK/edgeprov.toml" <<T
data_dir = "$WORK/data"
log_level = "warn"
[phone]
https_listen = ["127.0.0.1:$EP_PORT"]
http_listen = []
[admin]
listen = "127.0.0.1:0"
[[firmware.release]]
models = ["J179"]
version = "1"
file = "$FILE"
urls = ["http://127.0.0.1:$UP_PORT/$FILE"]
sha256 = "$SHA"
size = $SIZE
T

wait_for() { # name url pid log: until the server answers, or it exits
  for _ in $(seq 100); do
    kill -0 "$3" 2>/dev/null || die "$1 did not start: $(tail -n 5 "$4")"
    if curl -sk --max-time 2 -o /dev/null "$2"; then return 0; fi
    sleep 0.1
  done
  die "$1 did not answer at $2 within 10 s: $(tail -n 5 "$4")"
}

"$BIN" serve --config "$WORK/edgeprov.toml" 2>"$WORK/edgeprov.log" &
PIDS+=($!)
EP_PID=$!
wait_for edgeprov "https://127.0.0.1:$EP_PORT/ca.crl" "$EP_PID" "$WORK/edgeprov.log"
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx/stderr" &
PIDS+=($!)
NG_PID=$!
wait_for nginx "https://127.0.0.1:$NG_PORT/" "$NG_PID" "$WORK/nginx/stderr"
# Warm edgeprov's cache (one upstream fetch) and check both serve the same bytes.
for port in "$EP_PORT" "$NG_PORT"; do
  got=$({ curl -sk --max-time 300 "https://127.0.0.1:$port/$FILE" || true; } | sha256sum | cut -d' ' -f1)
  [ "$got" = "$SHA" ] ||
    die "port $port served wrong bytes: $(tail -n 5 "$WORK/edgeprov.log" "$WORK/nginx/error.log" 2>&1)"
done

for port in "$EP_PORT" "$NG_PORT"; do
  echo "port $port: $(timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost </dev/null 2>/dev/null \
    | awk '/^New, / { sub(/^New, /, ""); print; exit }' || true)"
done

peak_rss_kb() { # pids...
  local total=0 v
  for p in "$@"; do
    v=$(awk '/^VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

run() { # name port pids...
  local name=$1 port=$2; shift 2
  local start end bytes i count pid rc
  local url="https://127.0.0.1:$port/$FILE"
  rm -f "$WORK/$name".sizes.* "$WORK/$name".errors.*
  start=$(date +%s.%N)
  # Exactly N downloads, shared out as evenly as the clients allow.
  for i in $(seq "$CLIENTS"); do
    count=$(( N / CLIENTS + (i <= N % CLIENTS ? 1 : 0) ))
    [ "$count" -gt 0 ] || continue
    ( args=(); for _ in $(seq "$count"); do args+=(-o /dev/null "$url"); done
      curl -sk --no-progress-meter --max-time 600 --parallel --parallel-immediate --parallel-max "$count" \
        -w '%{size_download}\n' "${args[@]}" ) \
      > "$WORK/$name.sizes.$i" 2>"$WORK/$name.errors.$i" &
    CURLS[$i]=$!
  done
  # Every client's exit, not only the last one's.
  for i in "${!CURLS[@]}"; do
    rc=0
    wait "${CURLS[$i]}" || rc=$?
    unset "CURLS[$i]"
    [ "$rc" = 0 ] || die "downloads from $name failed (curl exit $rc): $(cat "$WORK/$name".errors.* | tail -n 5)"
  done
  end=$(date +%s.%N)
  for pid in "$@"; do
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died during the downloads"
  done
  bytes=$(cat "$WORK/$name".sizes.* | awk '{ s += $1 } END { print s + 0 }')
  [ "$bytes" = "$((N * SIZE))" ] ||
    die "downloads from $name received $bytes bytes, not $((N * SIZE))"
  local rss
  rss=$(peak_rss_kb "$@")
  awk -v n="$name" -v b="$bytes" -v s="$start" -v e="$end" -v r="$rss" -v want="$((N * SIZE))" 'BEGIN {
    printf "%-9s %8.1f MB/s   %6.2f s   %5.0f MB received of %5.0f   peak RSS %6.1f MB\n",
      n, b / 1e6 / (e - s), e - s, b / 1e6, want / 1e6, r / 1024 }'
}

echo "$N concurrent TLS downloads of a $MB MB image ($CLIENTS curl processes), loopback, $(nproc) cores"
for server in ${ORDER:-edgeprov nginx}; do
  case $server in
    edgeprov) run edgeprov "$EP_PORT" "$EP_PID" ;;
    nginx) run nginx "$NG_PORT" $(pgrep -P "$NG_PID" || true) "$NG_PID" ;;
  esac
done
