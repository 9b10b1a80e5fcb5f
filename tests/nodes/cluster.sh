#!/usr/bin/env bash
# The node lab's etcd cluster and flannel, set up by vagrant/provision.sh exactly as the Vagrant
# lab is: certificates from vagrant/make-certs.sh, one etcd member per node (TLS, client and
# peer), the package installed with apt, /etc/sysconfig/flanneld as in seed 003 (or 004).
#
#   source tests/nodes/cluster.sh
#   cluster_up 3 v2 DEB 'JSON'   # nodes, etcd cluster (v2 or v3 API), network config, flanneld
#   cluster_etcdctl 1 get /jxdd/network/config  # etcdctl on node 1 with the lab's TLS (v2 API)
#   cluster_etcdctl3 1 get --prefix /jxdd       # the same, v3 API
# Set CLUSTER_PROVISION_ARGS for more provision.sh arguments (e.g. --no-flanneld), and
# CLUSTER_SYSCONFIG_004 to the nodes that get seed 004's file (e.g. "3").
set -euo pipefail
NODES_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$NODES_HERE/../.." && pwd)
# shellcheck source=tests/nodes/lib.sh
source "$NODES_HERE/lib.sh"

CLUSTER_PREFIX=${CLUSTER_PREFIX:-/jxdd/network}
CLUSTER_PROVISION_ARGS=${CLUSTER_PROVISION_ARGS:-}
CLUSTER_SYSCONFIG_004=${CLUSTER_SYSCONFIG_004:-}

# Scenario bookkeeping: an ok/FAIL line per check and a count of the failures (a test script
# exits non-zero when fails > 0 at its end).
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

# busybox_image: $NODE_LAB_DIR/busybox.tar, a container image's root made from Debian's
# busybox-static (no registry is reachable from the lab), with a page under /www to serve.
busybox_image() {
  local r="$NODE_LAB_DIR/image"
  rm -rf "$r"
  mkdir -p "$r/bin" "$r/www"
  cp /bin/busybox "$r/bin/busybox"
  for a in sh ping sleep ip cat httpd nc; do ln -s busybox "$r/bin/$a"; done
  echo "hello from the pod network" >"$r/www/index.html"
  tar -C "$r" -cf "$NODE_LAB_DIR/busybox.tar" .
}

cluster_members() {
  local i out=
  for i in $(seq 1 "$1"); do out+="${out:+,}node$i=$(node_ip "$i")"; done
  echo "$out"
}
# The etcd members' client URLs (written by cluster_up).
cluster_endpoints() { cat "$NODE_LAB_DIR/endpoints"; }

cluster_etcdctl() {
  local i=$1
  shift
  node_exec "$i" env ETCDCTL_API=2 etcdctl --endpoints="$(cluster_endpoints)" \
    --ca-file=/etc/kubernetes/ssl/ca.pem --cert-file=/etc/flanneld/ssl/flanneld.pem \
    --key-file=/etc/flanneld/ssl/flanneld-key.pem "$@"
}
cluster_etcdctl3() {
  local i=$1
  shift
  node_exec "$i" env ETCDCTL_API=3 etcdctl --endpoints="$(cluster_endpoints)" \
    --cacert=/etc/kubernetes/ssl/ca.pem --cert=/etc/flanneld/ssl/flanneld.pem \
    --key=/etc/flanneld/ssl/flanneld-key.pem "$@"
}

# cluster_up N API DEB NETWORK_JSON: N nodes provisioned in parallel; node 1 writes the config.
cluster_up() {
  local n=$1 api=$2 deb=$3 netconf=$4 i
  nodes_up "$n"
  # shellcheck disable=SC2046  # one argument per address
  bash "$REPO/vagrant/make-certs.sh" "$NODE_LAB_DIR/certs" $(for i in $(seq 1 "$n"); do node_ip "$i"; done)
  cluster_members "$n" >"$NODE_LAB_DIR/members"
  for i in $(seq 1 "$n"); do echo "https://$(node_ip "$i"):2379"; done | paste -sd, >"$NODE_LAB_DIR/endpoints"
  echo "$api" >"$NODE_LAB_DIR/api"
  cluster_provision "$deb" "$netconf" $(seq 1 "$n")
}

# cluster_join I DEB: boots node I and makes it a client of the running cluster (no etcd member).
cluster_join() {
  node_up "$1"
  cluster_provision "$2" "" "$1"
}

# cluster_provision DEB NETWORK_JSON I...: provision.sh on nodes I... in parallel; the first
# node listed writes NETWORK_JSON (when not empty).
cluster_provision() {
  local deb=$1 netconf=$2 i first members api pids=() sys extra
  shift 2
  first=$1 members=$(cat "$NODE_LAB_DIR/members") api=$(cat "$NODE_LAB_DIR/api")
  for i in "$@"; do
    mkdir -p "$(node_root "$i")/root/lab"
    cp -r "$NODE_LAB_DIR/certs" "$REPO/vagrant/provision.sh" "$(node_root "$i")/root/lab/"
    [ -n "$deb" ] && cp "$deb" "$(node_root "$i")/root/lab/"
    sys=003
    [[ " $CLUSTER_SYSCONFIG_004 " == *" $i "* ]] && sys=004
    extra=()
    [ -n "$deb" ] && extra+=("--deb=/root/lab/$(basename "$deb")")
    [ "$i" = "$first" ] && [ -n "$netconf" ] && extra+=("--network-config=$netconf")
    # shellcheck disable=SC2086  # CLUSTER_PROVISION_ARGS is a list of words
    node_exec "$i" bash /root/lab/provision.sh --name="node$i" --ip="$(node_ip "$i")" \
      --members="$members" --certs=/root/lab/certs --prefix="$CLUSTER_PREFIX" --api="$api" \
      --sysconfig="$sys" "${extra[@]}" $CLUSTER_PROVISION_ARGS >"$NODE_LAB_DIR/provision$i.log" 2>&1 &
    pids+=($!)
  done
  local rc=0 k=0
  for i in "$@"; do
    if ! wait "${pids[$k]}"; then
      lab_log "provision.sh failed on node$i:"
      cat "$NODE_LAB_DIR/provision$i.log" >&2
      rc=1
    fi
    k=$((k + 1))
  done
  return $rc
}
