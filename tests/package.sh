#!/usr/bin/env bash
# Builds the Debian package (from the debug build, to keep CI fast), checks its files and modes
# with dpkg-deb, and installs it into a scratch Debian root made with debootstrap, where its
# maintainer scripts must succeed: the user is created, the config is a conffile readable by it,
# removal keeps the data and purge deletes it. Needs root, cargo-deb and debootstrap.
#   cargo build && bash tests/package.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
for tool in cargo-deb dpkg-deb debootstrap chroot; do
  command -v "$tool" >/dev/null || { echo "package: $tool is missing"; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "package: needs root for the scratch install"; exit 2; }

work=$(mktemp -d)
trap 'umount -l "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
deb="$work/edgeprov.deb"
cargo deb --profile dev --no-build -o "$deb" >/dev/null 2>"$work/deb.log" || { cat "$work/deb.log"; exit 1; }
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }

listing=$(dpkg-deb -c "$deb")
mode_of() { awk -v p="./$1" '$6 == p { print $1 }' <<<"$listing"; }
check "binary /usr/bin/edgeprov is 0755" '[ "$(mode_of usr/bin/edgeprov)" = "-rwxr-xr-x" ]'
check "config /etc/edgeprov/edgeprov.toml is 0640" '[ "$(mode_of etc/edgeprov/edgeprov.toml)" = "-rw-r-----" ]'
check "unit /usr/lib/systemd/system/edgeprov.service" '[ "$(mode_of usr/lib/systemd/system/edgeprov.service)" = "-rw-r--r--" ]'
check "sysusers entry" '[ "$(mode_of usr/lib/sysusers.d/edgeprov.conf)" = "-rw-r--r--" ]'
check "tmpfiles entry" '[ "$(mode_of usr/lib/tmpfiles.d/edgeprov.conf)" = "-rw-r--r--" ]'
check "README in the docs" '[ -n "$(mode_of usr/share/doc/edgeprov/README.md)" ]'
# The README is the config's stated reference: every page it links to is installed where the
# link leads.
for doc in $( { grep -oE '\]\(docs/[^)#]+' README.md | cut -c3-;
                grep -ohE '\]\([a-z-]+\.(md|json)' docs/*.md | sed 's#^](#docs/#'; } | sort -u); do
  check "linked page $doc is installed" '[ -n "$(mode_of "usr/share/doc/edgeprov/$doc")" ]'
done
check "config is a conffile" 'dpkg-deb -f "$deb" Package >/dev/null && dpkg-deb -I "$deb" conffiles | grep -qx /etc/edgeprov/edgeprov.toml'
check "depends on systemd" 'dpkg-deb -f "$deb" Depends | grep -q systemd'

# A scratch Debian root, from the mirror apt already uses here (cached between runs).
cache=/var/cache/edgeprov-test
tarball="$cache/bookworm-root.tar"
if [ ! -s "$tarball" ]; then
  mirror=$( { cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true; } \
    | awk '/^(URIs:|deb )/ { for (i = 1; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }')
  [ -n "$mirror" ] || { echo "package: no Debian mirror in apt's sources"; exit 2; }
  mkdir -p "$cache"
  debootstrap --variant=minbase --include=systemd bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
  tar -C "$work/root" -cf "$tarball" .
else
  mkdir -p "$work/root" && tar -C "$work/root" -xf "$tarball"
fi
cp "$deb" "$work/root/tmp/edgeprov.deb"
mount -t proc proc "$work/root/proc"
in_root() { chroot "$work/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

check "dpkg -i runs its scripts successfully" 'in_root dpkg -i /tmp/edgeprov.deb >"$work/install.log" 2>&1 || { cat "$work/install.log"; false; }'
check "service user exists" 'in_root getent passwd edgeprov >/dev/null'
check "state directory owned by edgeprov" '[ "$(in_root stat -c %U:%a /var/lib/edgeprov)" = "edgeprov:750" ]'
check "config readable by the service group" '[ "$(in_root stat -c %G:%a /etc/edgeprov/edgeprov.toml)" = "edgeprov:640" ]'
check "service enabled" '[ -L "$work/root/etc/systemd/system/multi-user.target.wants/edgeprov.service" ]'
check "binary runs in the root" 'in_root /usr/bin/edgeprov --help >/dev/null'
# Every program the unit runs is on a minimal system with only the package's dependencies
# (ExecReload=/bin/kill failed there with 203/EXEC: kill comes with procps).
unit="$work/root/usr/lib/systemd/system/edgeprov.service"
for prog in $(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\([^ ]*\).*/\1/p' "$unit"); do
  check "the unit's program $prog is installed" 'in_root test -x "$prog"'
done
# doctor exits 1 on the shipped config (it names localhost, which phones cannot reach): what
# matters here is that the config loads and every check runs.
in_root /usr/bin/edgeprov --config /etc/edgeprov/edgeprov.toml doctor >"$work/doctor.txt" 2>&1 || true
check "shipped config loads and doctor checks it" 'grep -q "^FAIL discovery" "$work/doctor.txt" && grep -q "^ok   ports" "$work/doctor.txt" || { cat "$work/doctor.txt"; false; }'
check "reinstalling (an upgrade) runs its scripts again" 'in_root dpkg -i /tmp/edgeprov.deb >"$work/reinstall.log" 2>&1 || { cat "$work/reinstall.log"; false; }'
check "config still readable by the service group after it" '[ "$(in_root stat -c %G:%a /etc/edgeprov/edgeprov.toml)" = "edgeprov:640" ]'
# dpkg keeps a deleted conffile deleted on upgrades; the upgrade must still configure.
cp "$work/root/etc/edgeprov/edgeprov.toml" "$work/kept.toml"
rm "$work/root/etc/edgeprov/edgeprov.toml"
check "upgrading with the config deleted still configures" 'in_root dpkg -i /tmp/edgeprov.deb >"$work/deleted.log" 2>&1 || { cat "$work/deleted.log"; false; }'
cp "$work/kept.toml" "$work/root/etc/edgeprov/edgeprov.toml"
echo 'data' > "$work/root/var/lib/edgeprov/marker"
check "remove keeps data" 'in_root dpkg -r edgeprov >/dev/null 2>&1 && [ -f "$work/root/var/lib/edgeprov/marker" ]'
# A restore sets the replaced data directory aside; an interrupted one leaves its staging.
mkdir "$work/root/var/lib/edgeprov.replaced-1795420000" "$work/root/var/lib/.edgeprov-restore-0a1b2c3d4e5f"
check "purge deletes data" 'in_root dpkg -P edgeprov >/dev/null 2>&1 && [ ! -e "$work/root/var/lib/edgeprov" ]'
check "purge deletes the data directories a restore set aside" '[ -z "$(ls -A "$work/root/var/lib" | grep edgeprov)" ]'
if [ "$fail" = 0 ]; then echo "package: all checks passed"; else echo "package: checks failed"; exit 1; fi
