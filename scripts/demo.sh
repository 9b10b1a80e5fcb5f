#!/usr/bin/env bash
# The demo (README): a three-host flannel lab on one machine, no etcd needed.
#
#   sudo scripts/demo.sh          install what is missing, build, start 3 lab hosts (network
#                                 namespaces fldemo-h1..3 on a bridge in fldemo-hub), one flanneld
#                                 each on one shared SQLite file, wait for their leases, print
#                                 `flannelctl subnets list`, ping between pods on different hosts
#                                 (data-plane backends), then clean everything up
#   sudo scripts/demo.sh --keep   the same, but leave the lab running (inspect it with
#                                 `ip netns exec fldemo-h1 ...`); remove it with:
#   sudo scripts/demo.sh down     stop the agents and delete the namespaces and files
#
# BACKEND=vxlan|host-gw|udp|alloc chooses the backend (default vxlan).
# Everything lives in namespaces named fldemo-*; nothing is added to the root namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE=/run/flannel-demo
PREFIX=fldemo
HOSTS=3

down() {
  if [ -d "$STATE" ]; then
    for pidfile in "$STATE"/*.pid; do
      [ -e "$pidfile" ] || continue
      kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 0.2
  fi
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$STATE"
}

if [ "${1:-}" = "down" ]; then
  down
  echo "demo: lab removed"
  exit 0
fi
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (network namespaces); run: sudo $0 $*" >&2
  exit 1
fi

bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target flanneld flannelctl mk_docker_opts_sh >/dev/null
BIN=$ROOT/build/bin

down  # a previous run's leftovers
if [ "$KEEP" -eq 0 ]; then trap down EXIT; fi
mkdir -p "$STATE"
DB=$STATE/store.db

BACKEND=${BACKEND:-vxlan}

ip netns add $PREFIX-hub
ip -n $PREFIX-hub link set lo up
# A fixed MAC: a bridge without one takes its lowest port MAC, and a host that joins later can
# change it under the ARP entries of the others.
ip -n $PREFIX-hub link add br0 address 02:fa:00:00:00:fe type bridge
ip -n $PREFIX-hub addr add 10.250.0.254/24 dev br0
ip -n $PREFIX-hub link set br0 up
for i in $(seq 1 $HOSTS); do
  ns=$PREFIX-h$i
  ip netns add "$ns"
  ip -n $PREFIX-hub link add "v$i" type veth peer name eth0 netns "$ns"
  ip -n $PREFIX-hub link set "v$i" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "10.250.0.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via 10.250.0.254
done

echo "demo: network config (backend $BACKEND)"
"$BIN/flannelctl" -store=sqlite:$DB config set "{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Type\":\"$BACKEND\"}}"

for i in $(seq 1 $HOSTS); do
  ip netns exec $PREFIX-h$i "$BIN/flanneld" -store=sqlite:$DB -iface=eth0 \
    -subnet-file=$STATE/h$i.env -healthz-port=8471 -healthz-ip=127.0.0.1 \
    >"$STATE/h$i.log" 2>&1 &
  echo $! >"$STATE/h$i.pid"
done

for i in $(seq 1 $HOSTS); do
  for _ in $(seq 1 100); do [ -s "$STATE/h$i.env" ] && break; sleep 0.1; done
  if [ ! -s "$STATE/h$i.env" ]; then
    echo "demo: host $i got no lease; its log:" >&2
    cat "$STATE/h$i.log" >&2
    exit 1
  fi
  grep "Lease acquired" "$STATE/h$i.log" | sed "s/^/h$i: /"
done
echo
"$BIN/flannelctl" -store=sqlite:$DB subnets list
echo
echo "demo: subnet.env of host 1:"
cat "$STATE/h1.env"
echo "demo: mk-docker-opts.sh -k DOCKER_NETWORK_OPTIONS for host 1:"
"$BIN/mk-docker-opts.sh" -f "$STATE/h1.env" -k DOCKER_NETWORK_OPTIONS -d "$STATE/h1.docker"
cat "$STATE/h1.docker"

if [ "$BACKEND" != "alloc" ]; then
  echo
  echo "demo: one pod per host on cni0, pinging across hosts over $BACKEND"
  for i in $(seq 1 $HOSTS); do
    # shellcheck disable=SC1090
    gw=$(. "$STATE/h$i.env"; echo "$FLANNEL_SUBNET")
    pod=$PREFIX-pod$i
    ip netns add "$pod"
    ip -n $PREFIX-h$i link add cni0 address 02:fa:00:00:01:fe type bridge
    ip -n $PREFIX-h$i addr add "$gw" dev cni0
    ip -n $PREFIX-h$i link set cni0 up
    ip netns exec $PREFIX-h$i sysctl -qw net.ipv4.ip_forward=1
    ip -n $PREFIX-h$i link add "pod$i" type veth peer name eth0 netns "$pod"
    ip -n $PREFIX-h$i link set "pod$i" master cni0 up
    ip -n "$pod" link set lo up
    podip=$(echo "$gw" | awk -F'[./]' '{print $1"."$2"."$3"."$4+1"/"$5}')
    ip -n "$pod" addr add "$podip" dev eth0
    ip -n "$pod" link set eth0 up
    ip -n "$pod" route add default via "${gw%/*}"
    echo "${podip%/*}" >"$STATE/pod$i.ip"
  done
  sleep 0.5
  fail=0
  for i in $(seq 1 $HOSTS); do
    for j in $(seq 1 $HOSTS); do
      [ "$i" = "$j" ] && continue
      dst=$(cat "$STATE/pod$j.ip")
      if ip netns exec $PREFIX-pod$i ping -c 1 -W 2 "$dst" >/dev/null; then
        echo "pod$i -> pod$j ($dst): ok"
      else
        echo "pod$i -> pod$j ($dst): FAILED"; fail=1
      fi
    done
  done
  [ "$fail" -eq 0 ] || { echo "demo: some pings failed; logs in $STATE" >&2; KEEP=1; trap - EXIT; exit 1; }
fi

if [ "$KEEP" -eq 1 ]; then
  echo
  echo "demo: lab left running (namespaces $PREFIX-*); remove it with: sudo $0 down"
else
  echo
  echo "demo: done; cleaning up"
fi
