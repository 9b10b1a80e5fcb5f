#!/usr/bin/env bash
# Installs, from Debian 12's packages, whatever the build, the tests and the demo need and this
# machine lacks. Safe to run again: it asks apt only for what is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libsqlite3-dev nlohmann-json3-dev libcurl4-openssl-dev libnl-3-dev libnl-route-3-dev libnl-genl-3-dev
  libspdlog-dev libgtest-dev libgmock-dev libbenchmark-dev
  etcd-server etcd-client iproute2 iptables nftables libnftables-dev iperf3 iputils-ping openssl procps curl sqlite3
  containernetworking-plugins
  libssl-dev wireguard-go wireguard-tools tcpdump
  # build matrix (Clang), fuzzing (libFuzzer + sanitizer runtimes), the Debian package and its
  # checks (cpack's shlibdeps, lintian, systemd-analyze, dpkg --root)
  clang libclang-rt-14-dev dpkg-dev lintian systemd gzip
  # the node lab (tests/nodes): systemd machines and the programs that consume ours in the field
  systemd-container util-linux docker.io podman supervisor busybox-static vagrant python3
  # the house style check (.clang-format, scripts/check_format.sh)
  clang-format
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages and not root; run as root (or: sudo $0)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "deps: all ${#PACKAGES[@]} packages present"
fi
