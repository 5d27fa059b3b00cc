#!/usr/bin/env bash
# Build the test guest: a Debian kernel and a small initramfs (busybox, iperf3, ping,
# ethtool, nstat, tcpdump, the virtio-net modules and scripts/guest/init) that
# test/helpers/guest.ts boots under QEMU.
#
# Idempotent and cached: the kernel package is downloaded once per version, the
# initramfs is rebuilt only when this script, the init or the kernel changes.
# Output (in $VSWITCHD_GUEST_CACHE, default /var/cache/vswitchd-test/guest):
#   vmlinuz, initrd.img, version (the kernel release)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${VSWITCHD_GUEST_CACHE:-/var/cache/vswitchd-test/guest}
say() { echo "guest-build: $*"; }

if [[ $(id -u) -ne 0 ]]; then
  say "must run as root (apt-get)" >&2
  exit 1
fi

PACKAGES=(qemu-system-x86 busybox-static iperf3 ethtool iputils-ping iproute2 tcpdump cpio xz-utils gzip util-linux)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  say "installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

mkdir -p "$cache/debs"
# One build at a time (several test runs may start at once); the others wait and find it cached.
exec 9> "$cache/.lock"
flock 9
# The image package linux-image-amd64 currently points at (e.g. linux-image-6.1.0-57-amd64).
# Offline or without apt lists: fall back to whatever was downloaded before.
image_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}' || true)
deb=
if [[ -n "$image_pkg" ]]; then
  deb=$(ls "$cache"/debs/"${image_pkg}"_*.deb 2>/dev/null | head -1 || true)
  if [[ -z "$deb" ]]; then
    say "downloading $image_pkg"
    (cd "$cache/debs" && apt-get download -q "$image_pkg" 2>&1 | grep -v 'unsandboxed' || true)
    deb=$(ls "$cache"/debs/"${image_pkg}"_*.deb 2>/dev/null | head -1 || true)
  fi
fi
[[ -n "$deb" ]] || deb=$(ls -t "$cache"/debs/linux-image-*.deb 2>/dev/null | head -1 || true)
if [[ -z "$deb" ]]; then
  say "no kernel package (apt-get download ${image_pkg:-linux-image-*-amd64} failed)" >&2
  exit 1
fi

stamp=$( { basename "$deb"; stat -c %s "$deb"; sha256sum "$here/build.sh" "$here/init" | cut -c1-64; } | sha256sum | cut -c1-16)
if [[ -f "$cache/stamp" && "$(cat "$cache/stamp")" == "$stamp" && -f "$cache/vmlinuz" && -f "$cache/initrd.img" ]]; then
  say "cached: $cache ($(cat "$cache/version"))"
  exit 0
fi

work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "extracting $(basename "$deb")"
dpkg-deb -x "$deb" "$work/kpkg"
kver=$(ls "$work/kpkg/lib/modules" | head -1)
moddir="$work/kpkg/lib/modules/$kver"

root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,lib/modules,lib64}
cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$here/init" "$root/init"

# Modules in load order; a module built into the kernel (modules.builtin) is skipped.
: > "$root/etc/modules-load"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  f=$(find "$moddir/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -1)
  if [[ -z "$f" ]]; then
    if grep -q "/$m.ko\$" "$moddir/modules.builtin" 2>/dev/null; then continue; fi
    say "module $m not found in $kver" >&2
    exit 1
  fi
  case "$f" in # busybox insmod loads plain .ko only: decompress here
    *.xz) xz -dc "$f" > "$root/lib/modules/$m.ko" ;;
    *.zst) zstd -dc "$f" > "$root/lib/modules/$m.ko" ;;
    *.gz) gzip -dc "$f" > "$root/lib/modules/$m.ko" ;;
    *) cp "$f" "$root/lib/modules/$m.ko" ;;
  esac
  echo "$m.ko" >> "$root/etc/modules-load"
done

# Programs and the libraries ldd names for them (the dynamic loader included).
for prog in /usr/bin/iperf3 /usr/sbin/ethtool /usr/bin/ping /usr/bin/nstat /usr/bin/tcpdump; do
  real=$(command -v "$prog" || true)
  [[ -n "$real" ]] || { say "missing $prog" >&2; exit 1; }
  cp "$real" "$root/usr/bin/$(basename "$prog")"
  for lib in $(ldd "$real" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
printf 'tcpdump:x:0:0::/:/bin/sh\n' >> "$root/etc/passwd"
echo '127.0.0.1 localhost' > "$root/etc/hosts"

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) > "$work/initrd.img"
cp "$work/kpkg/boot/vmlinuz-$kver" "$work/vmlinuz"
mv "$work/initrd.img" "$cache/initrd.img"
mv "$work/vmlinuz" "$cache/vmlinuz"
echo "$kver" > "$cache/version"
echo "$stamp" > "$cache/stamp"
say "built $cache (kernel $kver, initrd $(du -k "$cache/initrd.img" | cut -f1) KiB)"
