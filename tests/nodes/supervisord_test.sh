#!/usr/bin/env bash
# ctest nodes_supervisord: seed 002 on real systemd machines: flanneld from the release tarball
# (laid out as flannel-v0.11.0-linux-amd64.tar.gz) under Debian's supervisord, host-gw.
# Three nodes run a three-member TLS etcd cluster (v2 API) set up by vagrant/provision.sh
# (--no-flanneld: no package). As the seed does on each node: the tarball unpacked into
# /opt/flannel-v0.11.0, /opt/flannel linked to it, the client certificates in /opt/flannel/cert,
# subnet.env written by hand (172.7.2N.1/24 on node N), flanneld.sh and the [program:] section;
# the config set once with `etcdctl set` (v2). Checks, against what supervisord, etcd and the
# kernel report:
#   - supervisorctl update starts flanneld-7-2N; supervisorctl status says RUNNING
#   - /opt/flannel/subnet.env rewritten by flanneld (a new file: same content as the seed's, so
#     its inode tells), none at the default /run/flannel/subnet.env; the network, and the subnet
#     the seed wrote by hand kept (the lease in etcd is that subnet)
#   - pods (network namespaces inside the nodes, on a bridge carrying FLANNEL_SUBNET's first
#     address) ping the pods of every other node over host-gw routes, through FORWARD rules
#     flanneld installs (dockerd, enabled on the nodes, sets FORWARD's policy to DROP; the test
#     adds no rule of its own)
#   - supervisorctl stop (stopsignal=QUIT): supervisord's log says "stopped: ... (exit status 2)"
#     (v0.11's Go runtime exits with status 2 on SIGQUIT; exitcodes=0,2), no flanneld is left,
#     and pods still ping (host-gw routes stay, the seed's part 3)
#   - supervisorctl start: RUNNING again, the same subnet, pods ping
#   - SIGQUIT sent to flanneld by someone else: "exited: ... (exit status 2; expected)" and
#     supervisord starts it again (autorestart=true)
# Usage: supervisord_test.sh PKG_DIR (from make_packages.sh: flannel-release.tar.gz)
set -euo pipefail
pkg=$(realpath "$1")
NODE_LAB_PREFIX=${NODE_LAB_PREFIX:-fns}
CLUSTER_PREFIX=/coreos.com/network # seed 002 keeps flannel's default prefix
CLUSTER_PROVISION_ARGS=--no-flanneld
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/nodes/cluster.sh
source "$here/cluster.sh"
trap nodes_down EXIT

nodes="1 2 3"
prog() { echo "flanneld-7-2$1"; } # the seed's program name, flanneld-7-21 on its first node
sup_state() { node_exec "$1" supervisorctl status "$(prog "$1")" | awk '{ print $2 }'; }
is_running() { [ "$(sup_state "$1")" = RUNNING ]; }
is_stopped() { [ "$(sup_state "$1")" = STOPPED ]; }
flannel_env() { node_sh "$1" ". /opt/flannel/subnet.env; echo \$$2"; }
flanneld_pids() { node_exec "$1" pgrep -x flanneld || true; }
sup_log() { node_exec "$1" cat /var/log/supervisor/supervisord.log; }
sup_log_size() { sup_log "$1" | wc -c; }
sup_log_since() { sup_log "$1" | tail -c +"$(($2 + 1))"; }
sup_log_has() { sup_log_since "$1" "$2" | grep -qF "$3"; }
pod_ip() { echo "172.7.2$1.2"; }
subnet_env_rewritten() { [ "$(node_exec "$1" stat -c %i /opt/flannel/subnet.env)" != "$2" ]; }
pod_ping() { node_exec "$1" ip netns exec pod ping -c 1 -W 2 "$2"; }

# The seed's flanneld.sh, addresses changed: this node's, the lab's etcd members, eth0. Run as
# written, ./flanneld is a child of sh: supervisord sends stopsignal to the pid it started (sh;
# no stopasgroup), dash dies of SIGQUIT and flanneld is left running, outside supervisord (the
# last check shows it on node3). So on nodes 1 and 2 sh execs flanneld ("exec ./flanneld"),
# and supervisord's SIGQUIT and the exit status it reports are flanneld's own.
flanneld_sh() {
  local exec="exec "
  [ "$1" = 3 ] && exec=
  cat <<EOF
#!/bin/sh
$exec./flanneld \\
  --public-ip=$(node_ip "$1") \\
  --etcd-endpoints=$(cluster_endpoints) \\
  --etcd-keyfile=./cert/client-key.pem \\
  --etcd-certfile=./cert/client.pem \\
  --etcd-cafile=./cert/ca.pem \\
  --iface=eth0 \\
  --subnet-file=./subnet.env \\
  --healthz-port=2401
EOF
}

# The seed's [program:] section, every setting as it has them but startsecs: supervisord says
# RUNNING only after startsecs, and 30 s at each of the 3 starts below would be most of this
# test's time; 5 s keeps the meaning (a flanneld that dies at once is a failed start).
flannel_ini() {
  cat <<EOF
[program:$(prog "$1")]
command=/opt/flannel/flanneld.sh ; the program (relative uses PATH, can take args)
numprocs=1 ; number of processes copies to start (def 1)
directory=/opt/flannel ; directory to cwd to before exec (def no cwd)
autostart=true ; start at supervisord start (default: true)
autorestart=true ; retstart at unexpected quit (default: true)
startsecs=5 ; number of secs prog must stay running (def. 1) (the seed: 30)
startretries=3 ; max # of serial start failures (default 3)
exitcodes=0,2 ; 'expected' exit codes for process (default 0,2)
stopsignal=QUIT ; signal used to kill process (default TERM)
stopwaitsecs=10 ; max num secs to wait b4 SIGKILL (default 10)
user=root ; setuid to this UNIX account to run the program
redirect_stderr=true ; redirect proc stderr to stdout (default false)
stdout_logfile=/data/logs/flanneld/flanneld.stdout.log ; stderr log path, NONE for none; default AUTO
stdout_logfile_maxbytes=64MB ; max # logfile bytes b4 rotation (default 50MB)
stdout_logfile_backups=4 ; # of stdout logfile backups (default 10)
stdout_capture_maxbytes=1MB ; number of bytes in 'capturemode' (default 0)
stdout_events_enabled=false ; emit events on stdout writes (default false)
EOF
}

# A pod: network namespace "pod" inside node I, its eth0 (172.7.2I.2) a veth into bridge pod0,
# which carries FLANNEL_SUBNET's first address (as docker0 or cni0 would).
pod_up() {
  local i=$1 subnet
  subnet=$(flannel_env "$i" FLANNEL_SUBNET)
  node_sh "$i" "set -e
    ip netns add pod
    ip link add pod0 type bridge
    ip addr add $subnet dev pod0
    ip link set pod0 up
    ip link add veth-pod type veth peer name eth0 netns pod
    ip link set veth-pod master pod0 up
    ip -n pod link set lo up
    ip -n pod addr add $(pod_ip "$i")/${subnet#*/} dev eth0
    ip -n pod link set eth0 up
    ip -n pod route add default via ${subnet%/*}
    sysctl -qw net.ipv4.ip_forward=1"
}

# flanneld's FORWARD rules for the network (-iptables-forward-rules, on by default as in v0.11)
# under the DROP policy dockerd sets: what lets pod traffic through on a docker host.
check_forward_rules() {
  local i=$1 rules
  rules=$(node_exec "$i" iptables -S FORWARD)
  if grep -qx -- '-P FORWARD DROP' <<<"$rules" && grep -qx -- '-A FORWARD -s 172.7.0.0/16 -j ACCEPT' <<<"$rules" &&
    grep -qx -- '-A FORWARD -d 172.7.0.0/16 -j ACCEPT' <<<"$rules"; then
    ok "node$i: FORWARD policy DROP (dockerd), flanneld's ACCEPT rules for 172.7.0.0/16 in place"
  else
    fail "node$i: want FORWARD policy DROP and flanneld's -s/-d 172.7.0.0/16 ACCEPT rules: $rules"
  fi
}

check_mesh() {
  local what=$1 i j
  for i in $nodes; do
    for j in $nodes; do
      [ "$i" = "$j" ] && continue
      if ! wait_for 10 "pod on node$i -> node$j's" pod_ping "$i" "$(pod_ip "$j")"; then
        fail "$what: the pod on node$i cannot ping node$j's ($(pod_ip "$j"))"
        node_exec "$i" ip route >&2 || true
        return
      fi
    done
  done
  ok "$what: pods on nodes $nodes ping each other"
}

# --- the cluster, the config as the seed sets it ----------------------------------------------
cluster_up 3 v2 "" ""
wait_for 120 "etcd cluster healthy" cluster_etcdctl 1 cluster-health ||
  { echo "supervisord_test: etcd cluster not healthy" >&2; exit 1; }
cluster_etcdctl 1 set "$CLUSTER_PREFIX/config" '{"Network": "172.7.0.0/16", "Backend": {"Type": "host-gw"}}' >/dev/null

# --- install as the seed does ----------------------------------------------------------------
for i in $nodes; do
  cp "$pkg/flannel-release.tar.gz" "$(node_root "$i")/root/lab/"
  flanneld_sh "$i" >"$(node_root "$i")/root/lab/flanneld.sh"
  flannel_ini "$i" >"$(node_root "$i")/root/lab/flannel.conf"
  node_sh "$i" "set -e
    mkdir /opt/flannel-v0.11.0
    tar xf /root/lab/flannel-release.tar.gz -C /opt/flannel-v0.11.0/
    ln -s /opt/flannel-v0.11.0/ /opt/flannel
    mkdir /opt/flannel/cert
    cp /root/lab/certs/ca.pem /opt/flannel/cert/ca.pem
    cp /root/lab/certs/flanneld.pem /opt/flannel/cert/client.pem
    cp /root/lab/certs/flanneld-key.pem /opt/flannel/cert/client-key.pem
    printf '%s\n' FLANNEL_NETWORK=172.7.0.0/16 FLANNEL_SUBNET=172.7.2$i.1/24 FLANNEL_MTU=1500 \
      FLANNEL_IPMASQ=false >/opt/flannel/subnet.env
    stat -c %i /opt/flannel/subnet.env >/root/lab/subnet.env.inode
    install -m 0755 /root/lab/flanneld.sh /opt/flannel/flanneld.sh
    mkdir -p /data/logs/flanneld
    install -m 0644 /root/lab/flannel.conf /etc/supervisor/conf.d/flannel.conf"
  wait_for 30 "supervisord on node$i" node_exec "$i" supervisorctl pid ||
    { echo "supervisord_test: supervisord not answering on node$i" >&2; exit 1; }
  node_exec "$i" supervisorctl update
done

for i in $nodes; do
  if wait_for 60 "$(prog "$i") RUNNING on node$i" is_running "$i"; then
    ok "node$i: supervisorctl status: $(node_exec "$i" supervisorctl status "$(prog "$i")")"
  else
    fail "node$i: $(prog "$i") is $(sup_state "$i"), not RUNNING"
    node_exec "$i" tail -20 /data/logs/flanneld/flanneld.stdout.log >&2 || true
  fi
done
((fails == 0)) || exit 1

for i in $nodes; do
  inode_before=$(cat "$(node_root "$i")/root/lab/subnet.env.inode")
  wait_for 30 "flanneld to write node$i's subnet.env" subnet_env_rewritten "$i" "$inode_before" || true
  inode_now=$(node_exec "$i" stat -c %i /opt/flannel/subnet.env)
  if [ "$inode_now" != "$inode_before" ] && node_exec "$i" test ! -e /run/flannel/subnet.env; then
    ok "node$i: flanneld wrote /opt/flannel/subnet.env (--subnet-file=./subnet.env in directory=/opt/flannel)"
  else
    fail "node$i: /opt/flannel/subnet.env is still the hand-written file (inode $inode_now) or /run/flannel/subnet.env exists"
  fi
  net=$(flannel_env "$i" FLANNEL_NETWORK) subnet=$(flannel_env "$i" FLANNEL_SUBNET)
  lease=$(cluster_etcdctl "$i" get "$CLUSTER_PREFIX/subnets/172.7.2$i.0-24" 2>/dev/null || true)
  if [ "$net" = 172.7.0.0/16 ] && [ "$subnet" = "172.7.2$i.1/24" ] &&
    [[ "$lease" == *"\"PublicIP\":\"$(node_ip "$i")\""* ]]; then
    ok "node$i: /opt/flannel/subnet.env keeps the seed's subnet $subnet; its lease in etcd: $lease"
  else
    fail "node$i: subnet.env has network '$net' subnet '$subnet' (want 172.7.2$i.1/24); lease: '$lease'"
  fi
  pod_up "$i"
  check_forward_rules "$i"
done
check_mesh "host-gw, flanneld under supervisord"

# --- supervisorctl stop: SIGQUIT --------------------------------------------------------------
subnet1=$(flannel_env 1 FLANNEL_SUBNET)
mark=$(sup_log_size 1)
node_exec 1 supervisorctl stop "$(prog 1)" >/dev/null || true
if wait_for 20 "$(prog 1) STOPPED" is_stopped 1; then ok "node1: supervisorctl stop: STOPPED"; else
  fail "node1: after supervisorctl stop, $(prog 1) is $(sup_state 1)"
fi
log=$(sup_log_since 1 "$mark")
if grep -qF "stopped: $(prog 1) (exit status 2)" <<<"$log"; then
  ok "node1: supervisord: $(grep -F "stopped: $(prog 1)" <<<"$log")"
else
  fail "node1: supervisord's log after stop has no 'stopped: $(prog 1) (exit status 2)': $log"
fi
if grep -q 'not expected\|SIGKILL' <<<"$log"; then fail "node1: supervisord after stop: $log"; fi
left=$(flanneld_pids 1)
if [ -z "$left" ]; then ok "node1: no flanneld left after stop"; else
  fail "node1: flanneld still running after supervisorctl stop (pid $left)"
fi
check_mesh "flanneld stopped on node1 (host-gw routes stay)"

# --- supervisorctl start ----------------------------------------------------------------------
node_exec 1 supervisorctl start "$(prog 1)" >/dev/null || true
if wait_for 60 "$(prog 1) RUNNING again" is_running 1; then ok "node1: supervisorctl start: RUNNING"; else
  fail "node1: after supervisorctl start, $(prog 1) is $(sup_state 1)"
  node_exec 1 tail -20 /data/logs/flanneld/flanneld.stdout.log >&2 || true
fi
if [ "$(flannel_env 1 FLANNEL_SUBNET)" = "$subnet1" ]; then ok "node1: same subnet after restart ($subnet1)"; else
  fail "node1: subnet $subnet1 before stop, $(flannel_env 1 FLANNEL_SUBNET) after start"
fi
check_mesh "after supervisorctl start on node1"

# --- SIGQUIT from elsewhere: an expected exit (exitcodes=0,2), restarted (autorestart=true) ----
mark=$(sup_log_size 2)
pid=$(flanneld_pids 2)
node_exec 2 kill -QUIT "$pid"
wait_for 20 "supervisord to see flanneld exit on node2" sup_log_has 2 "$mark" "exited: $(prog 2) " || true
log=$(sup_log_since 2 "$mark")
if grep -qF "exited: $(prog 2) (exit status 2; expected)" <<<"$log"; then
  ok "node2: kill -QUIT flanneld: supervisord: $(grep -F "exited: $(prog 2)" <<<"$log")"
else
  fail "node2: kill -QUIT flanneld: supervisord's log has no '(exit status 2; expected)': $log"
fi
if wait_for 60 "$(prog 2) RUNNING after the exit" is_running 2 &&
  [ -n "$(flanneld_pids 2)" ] && [ "$(flanneld_pids 2)" != "$pid" ]; then
  ok "node2: supervisord started flanneld again (pid $pid -> $(flanneld_pids 2))"
else
  fail "node2: after kill -QUIT, $(prog 2) is $(sup_state 2), flanneld pid '$(flanneld_pids 2)'"
fi

# --- node3, flanneld.sh as the seed wrote it: supervisorctl stop leaves flanneld running -------
mark=$(sup_log_size 3)
pid=$(flanneld_pids 3)
node_exec 3 supervisorctl stop "$(prog 3)" >/dev/null || true
wait_for 20 "$(prog 3) STOPPED" is_stopped 3 || true
log=$(sup_log_since 3 "$mark")
if grep -qF "stopped: $(prog 3) (terminated by SIGQUIT" <<<"$log" && [ "$(flanneld_pids 3)" = "$pid" ]; then
  ok "node3 (seed's flanneld.sh, no exec): stop kills sh only ($(grep -F "stopped: $(prog 3)" <<<"$log")); flanneld $pid runs on, unsupervised"
else
  fail "node3 (no exec): stop: '$log'; flanneld pid $pid before, '$(flanneld_pids 3)' after"
fi

((fails == 0)) || { echo "supervisord_test: $fails check(s) failed" >&2; exit 1; }
echo "supervisord_test: all checks passed"
