#!/usr/bin/env bash
# benches/firmware.sh fails loudly when a step fails, and leaves nothing behind: an edgeprov that
# does not start, an nginx that does not start and (when nginx is installed) downloads that fail
# (stand-ins first on PATH or as EDGEPROV_BIN) each make the bench exit 1 with a message naming
# what failed, print no figures, and leave no process or work directory of its run. Loopback
# only, a 1 MB image, a few seconds.
#   cargo build && bash tests/bench-firmware.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${EDGEPROV_BIN:-$top/target/debug/edgeprov}
for tool in curl openssl; do
    command -v "$tool" >/dev/null || { echo "bench-firmware: $tool is missing (apt-get install $tool)"; exit 2; }
done
[ -x "$bin" ] || { echo "bench-firmware: build first (cargo build)"; exit 2; }
real_nginx=$(command -v nginx || true)
real_curl=$(command -v curl)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin" "$work/tmp"
chmod 755 "$work" "$work/tmp"   # nginx workers may run as another user

stand_in() { # name body: a script on the stand-ins' PATH
    printf '#!/bin/bash\n%s\n' "$2" >"$work/bin/$1"
    chmod +x "$work/bin/$1"
}

fail() {
    echo "bench-firmware: $*"
    echo "--- stderr of the bench"
    cat "$work/err"
    exit 1
}

# expect CASE MESSAGE [env...]: the bench, run with the stand-ins, exits 1 naming MESSAGE.
expect() {
    local case=$1 message=$2 rc=0
    shift 2
    env PATH="$work/bin:$PATH" TMPDIR="$work/tmp" EDGEPROV_BIN="$bin" CLIENTS=2 \
        EP_PORT=28473 NG_PORT=28474 UP_PORT=28075 "$@" \
        timeout 60 bash "$top/benches/firmware.sh" 2 1 >"$work/out" 2>"$work/err" || rc=$?
    [ "$rc" = 1 ] || fail "$case: exit status $rc, not 1"
    grep -qF "$message" "$work/err" || fail "$case: the failure does not say: $message"
    if grep -q 'MB/s' "$work/out"; then fail "$case: figures were printed: $(cat "$work/out")"; fi
    [ -z "$(ls -A "$work/tmp")" ] || fail "$case: left its work directory behind"
    if pgrep -f "$work/" >/dev/null; then fail "$case: left processes behind: $(pgrep -af "$work/")"; fi
    echo "ok: $case"
}

# An nginx that would stay up (under its own path, so a leftover shows), never reached.
stand_in nginx 'exec -a "$0" sleep 120'
printf '#!/bin/sh\necho "edgeprov: cannot listen (stand-in)" >&2\nexit 1\n' >"$work/edgeprov"
chmod +x "$work/edgeprov"
expect "an edgeprov that does not start" \
    "edgeprov did not start: edgeprov: cannot listen (stand-in)" EDGEPROV_BIN="$work/edgeprov"

stand_in nginx 'echo "nginx: [emerg] bind() failed (stand-in)" >&2; exit 1'
expect "an nginx that does not start" "nginx did not start: nginx: [emerg] bind() failed (stand-in)"

if [ -z "$real_nginx" ]; then
    echo "skip: downloads that fail (nginx is not installed)"
    exit 0
fi
rm "$work/bin/nginx"
# curl as itself, but the bench's parallel downloads fail.
stand_in curl "case \" \$* \" in *' --parallel '*) echo 'curl: (56) Recv failure (stand-in)' >&2; exit 56 ;; esac; exec '$real_curl' \"\$@\""
expect "downloads that fail" "downloads from edgeprov failed (curl exit 56): curl: (56) Recv failure (stand-in)"
