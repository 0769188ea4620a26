#!/usr/bin/env bash
# Install the Debian/Ubuntu packages Caffe needs to build, skipping those already present.
# Run as root (or with sudo available). Prints what it installs.
set -euo pipefail

PKGS=(
    build-essential pkg-config rsync
    libprotobuf-dev protobuf-compiler
    libgoogle-glog-dev libgflags-dev
    libhdf5-dev libleveldb-dev liblmdb-dev libsnappy-dev
    libboost-system-dev libboost-thread-dev libboost-filesystem-dev libboost-python-dev
    libopenblas-dev
    python3-dev python3-venv
)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "[install_deps] all ${#PKGS[@]} system packages present"
    exit 0
fi

SUDO=
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "[install_deps] ERROR: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
echo "[install_deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
