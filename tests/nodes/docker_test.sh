#!/usr/bin/env bash
# ctest nodes_docker: seeds 003 and 004 on real systemd machines with Debian's dockerd.
# Three nodes run a three-member TLS etcd cluster (v2 API) and our package, set up by
# vagrant/provision.sh: /etc/sysconfig/flanneld as seed 003 writes it on nodes 1 and 2 and as
# seed 004 on node 3, the config written with `etcdctl mk` as seed 004 (vxlan), flanneld enabled
# with systemctl. Checks, each against what systemd, journald, docker and the kernel report:
#   - starting docker starts flanneld first (RequiredBy=, Before=; systemd's own timestamps)
#   - "Lease acquired" in journald (seed 004's file) and in the log_dir files (seed 003's)
#   - docker0 carries FLANNEL_SUBNET's gateway and FLANNEL_MTU; dockerd's command line keeps
#     everything Debian's docker.service gives it
#   - containers ping containers on every other node
#   - systemctl restart flanneld: same subnet, not one ping lost
#   - etcd stopped on the raft leader's node: every lease stays, pings keep flowing, and a
#     fourth node that starts afterwards joins (its lease reaches the leader's node's flanneld,
#     which must have failed over to another member)
#   - systemctl stop flanneld leaves the routes: pings still flow
# Then a v3-only cluster (no --enable-v2) over host-gw: leases under the v3 keys, pings.
# Usage: docker_test.sh PKG_DIR (from make_packages.sh)
set -euo pipefail
pkg=$(realpath "$1")
NODE_LAB_PREFIX=${NODE_LAB_PREFIX:-fnd}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/nodes/cluster.sh
source "$here/cluster.sh"
trap nodes_down EXIT
trap 'echo "docker_test: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

flannel_env() { node_sh "$1" ". /run/flannel/subnet.env; echo \$$2"; }
# Container addresses, read once when each starts (a node's dockerd may be stopped later).
declare -A cip
container_ip() { echo "${cip[$1]}"; }
ping_from() { node_exec "$1" docker exec "c$1" ping -c 1 -W 2 "$2" >/dev/null 2>&1; }

# Containers on every node in $nodes ping each other (retried for 10 s: routes settle).
check_mesh() {
  local what=$1 i j ip
  for i in $nodes; do
    for j in $nodes; do
      [ "$i" = "$j" ] && continue
      ip=$(container_ip "$j")
      if wait_for 10 "c$i -> c$j" ping_from "$i" "$ip"; then :; else
        fail "$what: container on node$i cannot ping node$j's ($ip)"
        return
      fi
    done
  done
  ok "$what: containers on nodes $nodes ping each other"
}

start_container() {
  node_exec "$1" sh -c 'docker image inspect lab/busybox >/dev/null 2>&1 ||
    docker import /root/lab/busybox.tar lab/busybox >/dev/null'
  node_exec "$1" docker run -d --name "c$1" lab/busybox sleep 100000 >/dev/null
  cip[$1]=$(node_exec "$1" docker inspect -f '{{.NetworkSettings.IPAddress}}' "c$1")
}

# A ping every 0.1 s for SECONDS from node I's container to IP in the background; its summary
# lands in $NODE_LAB_DIR/ping-I.
# Sets ping_pid: wait for it, not for $!, which a later background job (cluster_join's
# provisioning) replaces.
ping_background() {
  node_exec "$1" docker exec "c$1" ping -i 0.1 -w "$2" "$3" >"$NODE_LAB_DIR/ping-$1" 2>&1 &
  ping_pid=$!
}
ping_loss() { # prints "sent received"
  awk '/packets transmitted/ { print $1, $4 }' "$NODE_LAB_DIR/ping-$1"
}

# --- v2 cluster, vxlan ------------------------------------------------------------------------
CLUSTER_SYSCONFIG_004=3
cluster_up 3 v2 "$pkg/flannel-cpp.deb" \
  '{ "Network": "172.30.0.0/16", "SubnetLen": 24, "Backend": { "Type": "vxlan" } }'
busybox_image
nodes="1 2 3"
for i in $nodes; do
  wait_for 60 "flanneld active on node$i" node_exec "$i" systemctl is-active flanneld ||
    { node_exec "$i" journalctl -u flanneld --no-pager | tail -20 >&2; fail "node$i: flanneld not active"; }
  cp "$NODE_LAB_DIR/busybox.tar" "$(node_root "$i")/root/lab/"
done
((fails == 0)) || exit 1

# Docker as the seeds run it: stop both, start docker; systemd must start flanneld first.
# The seeds' unit says RequiredBy=docker.service, so systemd stops or restarts docker whenever
# flanneld is stopped or restarted; docker's live-restore keeps the containers running meanwhile
# (README, troubleshooting). vfs: docker's overlay2 cannot stack on the node's overlay root.
for i in $nodes; do
  echo '{"storage-driver": "vfs", "live-restore": true}' >"$(node_root "$i")/etc/docker/daemon.json"
  node_exec "$i" systemctl stop docker.socket docker flanneld
  node_exec "$i" systemctl start docker
  f=$(node_exec "$i" systemctl show -P ActiveEnterTimestampMonotonic flanneld)
  d=$(node_exec "$i" systemctl show -P ExecMainStartTimestampMonotonic docker)
  if [ "$f" -gt 0 ] && [ "$f" -le "$d" ]; then
    ok "node$i: flanneld active (t=$f us) before dockerd started (t=$d us)"
  else
    fail "node$i: flanneld active at $f us, dockerd started at $d us"
  fi
done

journal_has_lease() { node_exec 3 journalctl -u flanneld --no-pager | grep -q 'Lease acquired'; }
if wait_for 10 "journald to show node3's lease" journal_has_lease; then
  ok "node3 (seed 004's file): journalctl -u flanneld shows 'Lease acquired'"
else
  fail "node3: no 'Lease acquired' in journalctl -u flanneld"
fi
for i in 1 2; do
  if node_sh "$i" "grep -rq 'Lease acquired' /var/log/flannel/"; then
    ok "node$i (seed 003's file, --logtostderr=false): 'Lease acquired' in /var/log/flannel/"
  else
    fail "node$i: no 'Lease acquired' under /var/log/flannel/"
  fi
done

for i in $nodes; do
  subnet=$(flannel_env "$i" FLANNEL_SUBNET) mtu=$(flannel_env "$i" FLANNEL_MTU)
  got=$(node_exec "$i" ip -o -4 addr show dev docker0 | awk '{ print $4 }')
  if [ "$got" = "$subnet" ]; then
    ok "node$i: docker0 is $got (subnet.env)"
  else
    fail "node$i: docker0 is '$got', subnet.env says $subnet"
  fi
  args=$(node_exec "$i" ps -o args= -C dockerd)
  for want in "-H fd://" "--containerd=/run/containerd/containerd.sock" "--bip=$subnet" "--mtu=$mtu"; do
    [[ " $args " == *" $want "* ]] || fail "node$i: dockerd's command line lacks '$want': $args"
  done
  start_container "$i"
  # A bridge takes the smallest MTU of its ports: docker0's is docker's --mtu once a container
  # is attached (docker 20.10 creates the bridge itself at 1500).
  gotmtu=$(node_exec "$i" ip -o link show dev docker0 | sed -E 's/.* mtu ([0-9]+) .*/\1/')
  cmtu=$(node_exec "$i" docker exec "c$i" cat /sys/class/net/eth0/mtu)
  if [ "$gotmtu" = "$mtu" ] && [ "$cmtu" = "$mtu" ]; then
    ok "node$i: docker0 and the container's eth0 have mtu $mtu (FLANNEL_MTU)"
  else
    fail "node$i: docker0 mtu $gotmtu, container eth0 mtu $cmtu; FLANNEL_MTU is $mtu"
  fi
done
check_mesh "vxlan, v2 API"
subnets_before=$(for i in $nodes; do flannel_env "$i" FLANNEL_SUBNET; done)

# Restart flanneld on node 1 while node 2's container pings node 1's.
ping_background 2 6 "$(container_ip 1)"
node_exec 1 systemctl restart flanneld
wait "$ping_pid" || true
read -r sent got < <(ping_loss 2)
if [ "${sent:-0}" -gt 20 ] && [ "$sent" = "$got" ]; then
  ok "restart flanneld on node1: $got of $sent pings answered"
else
  fail "restart flanneld on node1: ${got:-?} of ${sent:-?} pings answered"
fi
[ "$(flannel_env 1 FLANNEL_SUBNET)" = "$(echo "$subnets_before" | sed -n 1p)" ] ||
  fail "node1's subnet changed across a restart: $(flannel_env 1 FLANNEL_SUBNET)"

# Stop etcd where the raft leader is; flanneld there stays up on the other members.
leader=$(cluster_etcdctl3 1 endpoint status -w simple 2>/dev/null |
  awk -F', ' '$5 == "true" { print $1 }' | sed -E 's#^https://10\.252\.0\.([0-9]+):2379$#\1#')
[[ "$leader" =~ ^[123]$ ]] || { fail "could not find the etcd leader ('$leader')"; leader=1; }
other=$(((leader % 3) + 1))
ping_background "$other" 8 "$(container_ip "$leader")"
node_exec "$leader" systemctl stop etcd
cluster_join 4 "$pkg/flannel-cpp.deb"
wait_for 60 "flanneld active on node4" node_exec 4 systemctl is-active flanneld ||
  fail "node4 (started after etcd stopped on node$leader): flanneld not active"
cp "$NODE_LAB_DIR/busybox.tar" "$(node_root 4)/root/lab/"
node_exec 4 systemctl restart docker
start_container 4
wait "$ping_pid" || true
read -r sent got < <(ping_loss "$other")
if [ "${sent:-0}" -gt 20 ] && [ "$sent" = "$got" ]; then
  ok "etcd stopped on node$leader (the leader): $got of $sent pings from node$other answered"
else
  fail "etcd stopped on node$leader: ${got:-?} of ${sent:-?} pings from node$other answered"
fi
nodes="1 2 3 4"
check_mesh "node4 joined with etcd down on node$leader"
leases=$(cluster_etcdctl "$other" ls /jxdd/network/subnets | wc -l)
[ "$leases" = 4 ] && ok "4 leases in etcd" || fail "$leases leases in etcd, want 4"
node_exec "$leader" systemctl start etcd

# systemctl stop flanneld (and with it docker; live-restore keeps the containers) leaves the
# data path in place: node1's container still reaches node2's, whose replies use node2's routes.
node_exec 2 systemctl stop flanneld
if node_exec 2 systemctl is-active docker >/dev/null; then
  fail "docker still active after systemctl stop flanneld (RequiredBy=docker.service)"
fi
if wait_for 10 "c1 -> c2, flanneld stopped on node2" ping_from 1 "$(container_ip 2)"; then
  ok "flanneld (and docker) stopped on node2: its routes stay, node1's container reaches node2's"
else
  fail "flanneld stopped on node2: node1's container cannot reach node2's"
fi
node_exec 2 systemctl start flanneld
nodes_down

# --- v3-only cluster, host-gw -----------------------------------------------------------------
CLUSTER_SYSCONFIG_004=
cluster_up 3 v3 "$pkg/flannel-cpp.deb" '{"Network": "172.31.0.0/16", "Backend": {"Type": "host-gw"}}'
busybox_image
nodes="1 2 3"
for i in $nodes; do
  wait_for 60 "flanneld active on node$i" node_exec "$i" systemctl is-active flanneld ||
    fail "v3: node$i: flanneld not active"
  cp "$NODE_LAB_DIR/busybox.tar" "$(node_root "$i")/root/lab/"
done
if cluster_etcdctl 1 ls / >/dev/null 2>&1; then fail "v3-only cluster answers the v2 API"; fi
keys=$(cluster_etcdctl3 1 get --prefix --keys-only /jxdd/network/subnets/ | grep -c . || true)
[ "$keys" = 3 ] && ok "v3: 3 leases under /jxdd/network/subnets/" || fail "v3: $keys lease keys, want 3"
for i in $nodes; do
  node_exec "$i" systemctl restart docker
  start_container "$i"
done
check_mesh "host-gw, v3 API"

((fails == 0)) || { echo "docker_test: $fails check(s) failed" >&2; exit 1; }
echo "docker_test: all checks passed"
