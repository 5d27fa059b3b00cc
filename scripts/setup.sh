#!/usr/bin/env bash
# Prepare a fresh Debian 12 host (as root) to build and test vswitchd.
# Idempotent: installs only missing packages, runs `npm ci` only when node_modules is
# missing or older than package-lock.json, then builds (bpf, addon, native test, TypeScript).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(libxdp-dev libbpf-dev clang llvm xdp-tools bpftool netsniff-ng iperf3 ethtool
  iproute2 pkg-config tcpdump arping iputils-ping python3 make g++ openvswitch-switch
  qemu-system-x86 busybox-static cpio libclang-rt-14-dev frr)

say() { echo "setup: $*"; }

if [[ $(id -u) -ne 0 ]]; then
  say "must run as root (packages, XDP, network namespaces)" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]} > 0)); then
  say "installing ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
else
  say "system packages present"
fi
# frr (the EVPN control plane of vxlan tunnels) comes with a system service that setup
# leaves alone: vswitchd's tests run their own zebra/bgpd per namespace.

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "node and npm (Node >= 20.19) are needed and not found" >&2
  exit 1
fi
say "node $(node --version), npm $(npm --version)"

# npm writes node_modules/.package-lock.json on every install: it dates node_modules.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "npm ci"
  npm ci
else
  say "node_modules up to date with package-lock.json, skipping npm ci"
fi

say "npm run build"
npm run build
# The QEMU guest of the tap tests (a Debian kernel and a busybox initramfs, cached):
# only the test run asks for it (scripts/test.sh passes --guest).
if [[ "${1:-}" == "--guest" ]]; then
  say "guest image"
  bash scripts/guest/build.sh
fi
say "done"
