#!/usr/bin/env bash
# ctest nodes_podman_cni: the Kubernetes pod network through CNI (seeds 001 and 002) on real
# systemd machines. kubelet is not packaged for Debian 12, so the CNI runtime is podman 4.3's
# (libcni, the library kubelet's runtimes use) with network_backend="cni" and storage driver vfs.
# Three nodes run a three-member TLS etcd cluster (v2 API) and our package (vagrant/provision.sh),
# the network config {"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}} (kube-flannel.yml's),
# and the conflist current flannel's manifest installs as /etc/cni/net.d/10-flannel.conflist
# ("flannel" with hairpinMode and isDefaultGateway, then "portmap"). Checks:
#   - podman sees the conflist as network cbr0
#   - each pod (podman container on cbr0) gets an address in its node's FLANNEL_SUBNET, a default
#     route via the subnet's gateway (isDefaultGateway) and FLANNEL_MTU on its eth0
#   - pods on each node ping the pods on every other node (vxlan)
#   - a published port (-p 8080:80, busybox httpd) answers from another node via the node's
#     address (portmap), from pods on the same and another node; the serving pod reaches itself
#     through it (hairpinMode); podman rm closes the port (portmap's DEL)
#   - removing a pod releases its address: host-local's file under /var/lib/cni/networks/cbr0/
#     exists while it runs and is gone after `podman rm`; a new pod can take an address again
#   - CNI CHECK: does podman 4.3 call it? `podman network reload` is the one command that could
#     (and `podman restart`); a logging wrapper in front of /usr/lib/cni/flannel records every
#     CNI_COMMAND it is given while these two commands run (in every podman process, conmon's
#     cleanup process included: it may be the one that sends DEL).
#     Podman 4.3 answers reload and restart with DEL then ADD (after libcni's VERSION) and never
#     sends CHECK: the test fails if that ever changes, so CHECK gets a check of its own then.
#     Nor could libcni CHECK this network: CheckNetworkList refuses a conflist below cniVersion
#     0.4.0, and the manifest's is 0.3.1. So our CHECK is tested by the route libcni would take:
#     node3 switches to the conflist `flannelctl cni-config` prints (1.0.0), a pod starts on it, and
#     libcni_check.py replays CheckNetworkList from libcni's own cache of that pod's ADD. The
#     flannel plugin's CHECK passes on the healthy pod, fails naming the route once the pod's
#     route to FLANNEL_NETWORK is deleted, and passes again once it is back.
# Usage: podman_cni_test.sh PKG_DIR (from make_packages.sh)
set -euo pipefail
pkg=$(realpath "$1")
NODE_LAB_PREFIX=${NODE_LAB_PREFIX:-fnp}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/nodes/cluster.sh
source "$here/cluster.sh"
trap nodes_down EXIT

CONFLIST='{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}'

# podman on node I as seed 001's runtime would set up CNI: the cni backend, vfs storage (the
# node's root is an overlay), /usr/lib/cni where our .deb puts the flannel plugin.
podman_setup() {
  local root
  root=$(node_root "$1")
  mkdir -p "$root/etc/containers" "$root/etc/cni/net.d" "$root/usr/local/lib/lab-cni"
  cat >"$root/etc/containers/containers.conf" <<'EOF'
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/local/lib/lab-cni", "/usr/lib/cni"]
network_config_dir = "/etc/cni/net.d"
EOF
  # The logging wrapper comes first in every podman process, the `podman container cleanup`
  # that conmon starts too (it may be the one that sends DEL); it logs only during the probe.
  cat >"$root/usr/local/lib/lab-cni/flannel" <<'EOF'
#!/bin/sh
[ -e /run/lab-cni.on ] && echo "$CNI_COMMAND $CNI_CONTAINERID" >>/var/log/lab-cni.log
exec /usr/lib/cni/flannel "$@"
EOF
  chmod +x "$root/usr/local/lib/lab-cni/flannel"
  cat >"$root/etc/containers/storage.conf" <<'EOF'
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
  echo "$CONFLIST" >"$root/etc/cni/net.d/10-flannel.conflist"
  cp "$NODE_LAB_DIR/busybox.tar" "$here/libcni_check.py" "$root/root/lab/"
  node_exec "$1" podman import /root/lab/busybox.tar lab/busybox >/dev/null
}

flannel_env() { node_sh "$1" ". /run/flannel/subnet.env; echo \$$2"; }
pod_ip() { node_exec "$1" podman inspect -f '{{.NetworkSettings.Networks.cbr0.IPAddress}}' "$2"; }
ping_from() { node_exec "$1" podman exec "p$1" ping -c 1 -W 2 "$2" >/dev/null 2>&1; }
start_pod() { # start_pod I NAME ARGS...
  local i=$1 name=$2
  shift 2
  node_exec "$i" podman run -d --name "$name" --network cbr0 --cap-add NET_RAW "$@" >/dev/null
}
http_get() { # http_get NODE URL: curl in node NODE's own network namespace
  node_exec "$1" curl -sS -m 3 "$2" 2>/dev/null | grep -q "hello from the pod network"
}
# pod_http_get NODE POD IP PORT: a GET with busybox nc from inside POD (busybox-static's wget
# segfaults: its getaddrinfo in a static glibc).
pod_http_get() {
  node_exec "$1" podman exec "$2" sh -c "printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 3 $3 $4" \
    2>/dev/null | grep -q "hello from the pod network"
}
ip_in_subnet() { # ip_in_subnet IP A.B.C.1/24 (flannel's SubnetLen 24)
  [ "${1%.*}" = "$(echo "${2%/*}" | cut -d. -f1-3)" ]
}

t0=$SECONDS
cluster_up 3 v2 "$pkg/flannel-cpp.deb" '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}'
busybox_image
nodes="1 2 3"
for i in $nodes; do
  wait_for 60 "flanneld active on node$i" node_exec "$i" systemctl is-active flanneld ||
    { node_exec "$i" journalctl -u flanneld --no-pager | tail -20 >&2; fail "node$i: flanneld not active"; }
  wait_for 30 "subnet.env on node$i" node_exec "$i" test -s /run/flannel/subnet.env ||
    fail "node$i: no /run/flannel/subnet.env"
done
((fails == 0)) || exit 1
for i in $nodes; do podman_setup "$i"; done

if node_exec 1 podman network inspect cbr0 >/dev/null 2>&1; then
  ok "podman (cni backend) has network cbr0 from 10-flannel.conflist"
else
  fail "podman network inspect cbr0: $(node_exec 1 podman network ls 2>&1 | tr '\n' ' ')"
fi

# One pod per node; its address, route and MTU from the flannel plugin's delegate.
for i in $nodes; do
  if ! start_pod "$i" "p$i" lab/busybox sleep 100000; then
    fail "node$i: podman run --network cbr0 failed"
    continue
  fi
  subnet=$(flannel_env "$i" FLANNEL_SUBNET) mtu=$(flannel_env "$i" FLANNEL_MTU)
  ip=$(pod_ip "$i" "p$i")
  if ip_in_subnet "$ip" "$subnet"; then ok "node$i: pod p$i has $ip in $subnet"; else
    fail "node$i: pod p$i has address '$ip', FLANNEL_SUBNET is $subnet"
  fi
  route=$(node_exec "$i" podman exec "p$i" ip route | grep '^default' || true)
  [[ "$route" == "default via ${subnet%/*} "* ]] && ok "node$i: p$i's $route (isDefaultGateway)" ||
    fail "node$i: p$i's default route is '$route', want via ${subnet%/*}"
  gotmtu=$(node_exec "$i" podman exec "p$i" cat /sys/class/net/eth0/mtu)
  [ "$gotmtu" = "$mtu" ] && ok "node$i: p$i's eth0 mtu $gotmtu (FLANNEL_MTU)" ||
    fail "node$i: p$i's eth0 mtu is $gotmtu, FLANNEL_MTU is $mtu"
done

# Pods on every node ping the pods on every other node (retried for 10 s: routes settle).
mesh_ok=1
for i in $nodes; do
  for j in $nodes; do
    [ "$i" = "$j" ] && continue
    ip=$(pod_ip "$j" "p$j") || ip=
    if ! wait_for 10 "p$i -> p$j" ping_from "$i" "$ip"; then
      fail "pod on node$i cannot ping node$j's pod ($ip)"
      mesh_ok=0
    fi
  done
done
((mesh_ok)) && ok "pods on nodes $nodes ping each other over vxlan"

# portmap: a published port answers via the node's address, from another node, from a pod on
# another node and from a pod on the same node; hairpinMode: the serving pod reaches itself
# through its node's published port (the packet leaves and re-enters the same bridge port).
if start_pod 1 web -p 8080:80 lab/busybox httpd -f -p 80 -h /www; then
  if wait_for 15 "node2 -> $(node_ip 1):8080" http_get 2 "http://$(node_ip 1):8080/index.html"; then
    ok "portmap: node2 gets node1:8080 (pod web's httpd on port 80)"
  else
    fail "portmap: node2 cannot get http://$(node_ip 1):8080/"
    node_exec 1 iptables-save -t nat >&2 || true
  fi
  if wait_for 10 "p3 -> node1:8080" pod_http_get 3 p3 "$(node_ip 1)" 8080; then
    ok "portmap: pod p3 on node3 gets node1:8080"
  else
    fail "portmap: pod p3 on node3 cannot get $(node_ip 1):8080"
  fi
  if wait_for 10 "p1 -> node1:8080" pod_http_get 1 p1 "$(node_ip 1)" 8080; then
    ok "portmap: pod p1 gets its own node's 8080 (served by web on the same bridge)"
  else
    fail "portmap: pod p1 on node1 cannot get $(node_ip 1):8080 (same node, same bridge)"
  fi
  hp=$(node_exec 1 bridge -d link show | grep -c 'hairpin on' || true)
  echo "node1: $hp bridge port(s) with hairpin on"
  if wait_for 10 "web -> node1:8080" pod_http_get 1 web "$(node_ip 1)" 8080; then
    ok "hairpinMode: pod web gets its own page through node1:8080"
  else
    fail "hairpinMode: pod web cannot reach itself through $(node_ip 1):8080 (hairpin_mode: $hp)"
  fi
  # DEL runs portmap's teardown too: the port closes and its rules go.
  node_exec 1 podman rm -f -t 0 web >/dev/null
  if node_exec 1 iptables-save -t nat | grep -q -- '--dport 8080'; then
    fail "node1: nat rules for port 8080 left after podman rm web"
  else
    ok "node1: podman rm web removed portmap's rules for 8080"
  fi
  http_get 2 "http://$(node_ip 1):8080/index.html" && fail "node1:8080 still answers after podman rm web"
else
  fail "node1: podman run -p 8080:80 failed"
fi

# Removing a pod releases its address (host-local's file under /var/lib/cni/networks/cbr0/).
ip=$(pod_ip 2 p2)
f=/var/lib/cni/networks/cbr0/$ip
if node_exec 2 test -f "$f"; then ok "node2: $f exists while p2 runs"; else
  fail "node2: no $f while p2 runs: $(node_exec 2 ls /var/lib/cni/networks/cbr0/ 2>&1 | tr '\n' ' ')"
fi
node_exec 2 podman rm -f -t 0 p2 >/dev/null
if node_exec 2 test -e "$f"; then
  fail "node2: $f still there after podman rm -f p2 (address not released)"
else
  ok "node2: podman rm -f p2 released $ip (host-local's file gone)"
fi
left=$(node_sh 2 'ls /var/lib/cni/networks/cbr0/ | grep -c "^[0-9]" || true')
[ "$left" = 0 ] && ok "node2: no address held under /var/lib/cni/networks/cbr0/" ||
  fail "node2: $left address file(s) left under /var/lib/cni/networks/cbr0/ with no pod"
if start_pod 2 p2 lab/busybox sleep 100000 && wait_for 10 "p1 -> new p2" ping_from 1 "$(pod_ip 2 p2)"; then
  ok "node2: a new pod gets $(pod_ip 2 p2) and node1's pod pings it"
else
  fail "node2: a new pod after podman rm does not come up or is not reachable"
fi

# CNI CHECK: what does podman 4.3 send when asked to reload a pod's network, or to restart it?
probe() { node_exec 1 touch /run/lab-cni.on && node_exec 1 podman "$@" >/dev/null; }
# libcni asks VERSION first (is the conflist's cniVersion supported?); then the operations.
probe_cmds() { node_sh 1 'cut -d" " -f1 /var/log/lab-cni.log 2>/dev/null | grep -vx VERSION | paste -sd" "'; }
for op in "network reload" "restart -t 0"; do
  node_exec 1 rm -f /var/log/lab-cni.log
  # shellcheck disable=SC2086  # op is words
  if ! probe $op p1; then
    node_exec 1 rm -f /run/lab-cni.on
    fail "node1: podman $op p1 failed"
    continue
  fi
  cmds=$(probe_cmds)
  node_exec 1 rm -f /run/lab-cni.on
  echo "podman $op sent the flannel plugin: '$cmds'"
  if [[ " $cmds " == *" CHECK "* ]]; then
    fail "podman $op now sends CHECK ($cmds): give CHECK a check of its own here"
  elif [ "$cmds" = "DEL ADD" ]; then
    ok "podman 4.3 does not call CNI CHECK: podman $op is DEL then ADD"
  else
    fail "podman $op sent '$cmds' to the flannel plugin, expected DEL ADD"
  fi
  ip1=$(pod_ip 1 p1)
  if wait_for 10 "p3 -> p1 after $op" ping_from 3 "$ip1"; then
    ok "after podman $op node3's pod pings p1 ($ip1)"
  else
    fail "after podman $op node3's pod cannot ping p1 ($ip1)"
  fi
done

# Our CHECK by libcni's route (see the top): node3 on the conflist of `flannelctl cni-config`.
libcni_check() { node_exec 3 python3 /root/lab/libcni_check.py "$(node_exec 3 podman inspect -f '{{.Id}}' chk)"; }
node_exec 3 flannelctl cni-config >"$(node_root 3)/etc/cni/net.d/10-flannel.conflist"
if start_pod 3 chk lab/busybox sleep 100000; then
  out=$(libcni_check 2>&1) || true
  if grep -qx "flannel CHECK ok" <<<"$out"; then
    ok "node3: CHECK of a healthy pod passes, as libcni's CheckNetworkList sends it (cniVersion 1.0.0)"
  else
    fail "node3: CHECK of a healthy pod, as libcni sends it, fails: $out"
  fi
  sandbox=$(node_exec 3 podman inspect -f '{{.NetworkSettings.SandboxKey}}' chk)
  network=$(flannel_env 3 FLANNEL_NETWORK) gw=$(flannel_env 3 FLANNEL_SUBNET)
  pod_route() { node_exec 3 ip netns exec "${sandbox##*/}" ip route "$@"; }
  pod_route del "$network"
  out=$(libcni_check 2>&1) || true
  if grep "^flannel CHECK failed" <<<"$out" | grep -q "${network%/*}"; then
    ok "node3: CHECK fails once the pod's route to $network is gone: ${out%%$'\n'*}"
  else
    fail "node3: CHECK does not see the pod's route to $network gone: $out"
  fi
  pod_route add "$network" via "${gw%/*}"
  out=$(libcni_check 2>&1) || true
  if grep -qx "flannel CHECK ok" <<<"$out"; then
    ok "node3: CHECK passes again with the route back"
  else
    fail "node3: CHECK still fails with the route back: $out"
  fi
else
  fail "node3: podman run on the conflist of flannelctl cni-config failed"
fi

echo "podman_cni_test: $((SECONDS - t0))s"
((fails == 0)) || { echo "podman_cni_test: $fails check(s) failed" >&2; exit 1; }
echo "podman_cni_test: all checks passed"
