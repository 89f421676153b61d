#!/usr/bin/env bash
# Audits the phone HTTPS port's TLS configuration with testssl.sh (Debian package `testssl.sh`).
# Fails when testssl reports any HIGH or CRITICAL finding. Slow (a few minutes), so .ci/run
# runs it only when EDGEPROV_TESTSSL=1; run it by hand after any TLS change:
#   cargo build && bash tests/testssl.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${EDGEPROV_BIN:-$top/target/debug/edgeprov}
command -v testssl >/dev/null || { echo "testssl is not installed (apt-get install testssl.sh)"; exit 2; }
[ -x "$bin" ] || { echo "build first: cargo build"; exit 2; }

work=$(mktemp -d)
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cat > "$work/edgeprov.toml" <<TOML
data_dir = "$work/data"
[phone]
https_listen = ["127.0.0.1:0"]
http_listen = []
[admin]
listen = "127.0.0.1:0"
TOML
"$bin" serve --config "$work/edgeprov.toml" 2>"$work/daemon.log" &
pid=$!
for _ in $(seq 100); do [ -s "$work/data/listeners.json" ] && break; sleep 0.1; done
[ -s "$work/data/listeners.json" ] || { echo "testssl: edgeprov did not start:"; tail -n 20 "$work/daemon.log"; exit 1; }
port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['phone_https'][0].split(':')[1])" "$work/data/listeners.json")
echo "testssl against 127.0.0.1:$port"
# testssl's exit status counts findings; no JSON at all means it did not run.
timeout 1200 testssl --quiet --color 0 --warnings off --ip one --add-ca "$work/data/pki/ca.crt" --jsonfile "$work/result.json" "127.0.0.1:$port" >"$work/testssl.txt" 2>&1 || true
[ -s "$work/result.json" ] || { echo "testssl: no findings written (did it run?):"; tail -n 20 "$work/testssl.txt"; exit 1; }
python3 - "$work/result.json" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))
by = {}
for f in findings:
    by.setdefault(f.get("severity", "?"), []).append(f)
for sev in ("CRITICAL", "HIGH", "MEDIUM", "LOW"):
    for f in by.get(sev, []):
        print(f"{sev:8} {f['id']}: {f['finding']}")
print("summary:", {k: len(v) for k, v in sorted(by.items())})
bad = len(by.get("CRITICAL", [])) + len(by.get("HIGH", []))
print(f"testssl: {bad} HIGH or CRITICAL findings")
sys.exit(1 if bad else 0)
PY
