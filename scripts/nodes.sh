#!/usr/bin/env bash
# The node lab by hand: systemd machines on this host running our package, a three-member TLS
# etcd cluster and docker, set up exactly as the tests (tests/nodes) and the Vagrant lab do.
#   sudo scripts/nodes.sh up [--nodes=3] [--api=v2|v3] [--backend=vxlan|host-gw] [--build=build]
#   sudo scripts/nodes.sh exec 2 systemctl status flanneld     # any command on node 2
#   sudo scripts/nodes.sh shell 2                             # a shell on node 2
#   sudo scripts/nodes.sh etcdctl ls /jxdd/network/subnets    # etcdctl (v2) with the lab's TLS
#   sudo scripts/nodes.sh down
# `up` builds the .deb from the build tree (cmake --build BUILD first) when it is missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export NODE_LAB_PREFIX=${NODE_LAB_PREFIX:-fnode}
# shellcheck source=tests/nodes/cluster.sh
source "$repo/tests/nodes/cluster.sh"

usage() { sed -n '2,9p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
[ "$(id -u)" -eq 0 ] || { echo "nodes.sh: run as root (namespaces, mounts, systemd-nspawn)" >&2; exit 1; }
cmd=$1
shift

case $cmd in
  up)
    n=3 api=v2 backend=vxlan build=$repo/build
    for arg in "$@"; do
      case $arg in
        --nodes=*) n=${arg#*=} ;;
        --api=*) api=${arg#*=} ;;
        --backend=*) backend=${arg#*=} ;;
        --build=*) build=$(realpath "${arg#*=}") ;;
        *) usage ;;
      esac
    done
    [ -x "$build/bin/flanneld" ] || { echo "nodes.sh: no $build/bin/flanneld; build first (README)" >&2; exit 1; }
    deb=$build/nodes-pkg/flannel-cpp.deb
    [ -f "$deb" ] && [ "$deb" -nt "$build/bin/flanneld" ] || bash "$repo/tests/nodes/make_packages.sh" "$build" "$build/nodes-pkg"
    trap 'echo "nodes.sh: up failed; tearing down" >&2; nodes_down' ERR
    cluster_up "$n" "$api" "$deb" "{\"Network\":\"172.30.0.0/16\",\"SubnetLen\":24,\"Backend\":{\"Type\":\"$backend\"}}"
    for i in $(seq 1 "$n"); do
      wait_for 60 "flanneld on node$i" node_exec "$i" systemctl is-active flanneld
      echo "node$i $(node_ip "$i"): $(node_sh "$i" '. /run/flannel/subnet.env; echo FLANNEL_SUBNET=$FLANNEL_SUBNET')"
    done
    echo "nodes.sh: up; try: $0 exec 1 ip route; $0 down when done"
    ;;
  exec)
    [ $# -ge 2 ] || usage
    node_exec "$@"
    ;;
  shell)
    [ $# -eq 1 ] || usage
    node_exec "$1" bash -l
    ;;
  etcdctl) cluster_etcdctl 1 "$@" ;;
  down) nodes_down ;;
  *) usage ;;
esac
