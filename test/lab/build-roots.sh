#!/usr/bin/env bash
# Builds the Debian chroots the lab runs newer systemd-networkd versions from
# (GEN_NETWORKD_LAB_SYSTEMD=trixie|sid; see test/lab/README.md):
#   trixie  Debian 13, networkd 257
#   sid     Debian unstable, the newest networkd Debian ships
# into ${GEN_NETWORKD_LAB_ROOTS:-/var/cache/gen-networkd-lab}/SUITE, about 260 MB each.
#
# Idempotent: a root that exists is kept as it is (delete it to get a newer sid).
# Each is built in SUITE.tmp and renamed only once debootstrap succeeded, so a
# root that exists is complete; a SUITE.tmp left by an interrupted run is
# started over. Suites given as arguments (default: trixie sid) are built in
# parallel; a second run waits for the first (one lock for the directory).
# Needs root and the debootstrap package.
set -euo pipefail

roots=${GEN_NETWORKD_LAB_ROOTS:-/var/cache/gen-networkd-lab}
mirror=http://deb.debian.org/debian
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(trixie sid)

mkdir -p "$roots"
# Two debootstraps in one SUITE.tmp corrupt it, and one run's clean-up would remove
# what the other is extracting.
exec {lock}>"$roots/.lock"
flock "$lock"

# debootstrap mounts /proc (and more) inside the new root and leaves them mounted
# when it fails or is killed: unmount them before the directory is removed, and
# never let rm cross into a mount.
remove_root() {
  local dir=$1 target
  [ -e "$dir" ] || return 0
  awk -v prefix="$dir/" 'index($5, prefix) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r target; do umount -l "$target"; done
  rm -rf --one-file-system "$dir"
}

build() {
  local suite=$1 final="$roots/$1" tmp="$roots/$1.tmp" log="$roots/$1.log"
  if [ -d "$final" ]; then
    echo "$suite: $final exists ($(chroot "$final" networkctl --version | head -n 1))"
    return 0
  fi
  remove_root "$tmp"
  echo "$suite: debootstrap into $tmp (log: $log)"
  # systemd: networkd and networkctl; dbus: the private bus networkctl talks over;
  # iproute2 and systemd-resolved: what a networkd machine of that release has.
  if ! debootstrap --variant=minbase --include=systemd,iproute2,dbus,systemd-resolved \
      "$suite" "$tmp" "$mirror" >"$log" 2>&1; then
    echo "$suite: debootstrap failed; the end of $log:" >&2
    tail -n 20 "$log" >&2
    remove_root "$tmp"
    return 1
  fi
  # The lab runs these; a root without them is not worth keeping.
  for path in /usr/lib/systemd/systemd-networkd /usr/bin/networkctl /usr/bin/dbus-daemon; do
    if [ ! -x "$tmp$path" ]; then
      echo "$suite: $path is missing from the new root" >&2
      return 1
    fi
  done
  # Package caches: nothing in the lab needs them.
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
  mv "$tmp" "$final"
  echo "$suite: ready: $final ($(chroot "$final" networkctl --version | head -n 1))"
}

pids=()
for suite in "${suites[@]}"; do
  build "$suite" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
exit $status
