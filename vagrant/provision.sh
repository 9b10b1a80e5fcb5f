#!/usr/bin/env bash
# provision.sh: makes one machine a node of the three-node lab, the way the seeds' operators
# set up theirs (seeds 000, 003, 004). One script, one truth: the Vagrantfile runs it in each VM
# and the node lab (tests/nodes) runs it in each systemd-nspawn machine.
#   1. installs Debian's etcd-server, etcd-client and docker.io (no-ops where present) and our
#      package: apt-get install ./flannel-cpp_*.deb
#   2. certificates (made by make-certs.sh) where seed 000 keeps them: /etc/kubernetes/ssl/ca.pem,
#      /etc/flanneld/ssl/flanneld{,-key}.pem; the member's own under /etc/etcd/ssl/
#   3. etcd: one member of a TLS cluster (client and peer), through /etc/default/etcd, started
#      by Debian's etcd.service without waiting (the cluster needs a quorum to answer); a node
#      not named in --members is a client of the cluster only (its own etcd is stopped)
#   4. flanneld: /etc/sysconfig/flanneld in seed 003's words (https endpoints, prefix, TLS and
#      --iface in FLANNEL_OPTIONS) or, with --sysconfig=004, in seed 004's (endpoints and prefix
#      only; TLS and interface as FLANNELD_* variables, logs to the journal); then
#      `systemctl enable --now --no-block flanneld`
#   5. with --network-config=JSON: waits for the cluster, then writes PREFIX/config as seed 004
#      does (etcdctl mkdir + mk on the v2 API; put on v3); an existing config is kept.
# Usage: provision.sh --name=node1 --ip=IP --members=node1=IP1,node2=IP2,... --certs=DIR
#          [--deb=FILE] [--iface=eth0] [--prefix=/jxdd/network] [--api=v2|v3]
#          [--sysconfig=003|004] [--network-config=JSON] [--no-flanneld] [--apt-update]
# --apt-update refreshes the package lists before installing (a VM with a network: the box's lists
# may be stale); --iface takes a name or an address (the Vagrantfile passes the node's address).
set -euo pipefail

name= ip= members= certs= deb= iface=eth0 prefix=/jxdd/network api=v2 sysconfig=003
netconf= start_flanneld=1 apt_update=0
for arg in "$@"; do
  case $arg in
    --name=*) name=${arg#*=} ;;
    --ip=*) ip=${arg#*=} ;;
    --members=*) members=${arg#*=} ;;
    --certs=*) certs=${arg#*=} ;;
    --deb=*) deb=${arg#*=} ;;
    --iface=*) iface=${arg#*=} ;;
    --prefix=*) prefix=${arg#*=} ;;
    --api=*) api=${arg#*=} ;;
    --sysconfig=*) sysconfig=${arg#*=} ;;
    --network-config=*) netconf=${arg#*=} ;;
    --no-flanneld) start_flanneld=0 ;;
    --apt-update) apt_update=1 ;;
    *) echo "provision: unknown argument '$arg' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
for v in name ip members certs; do
  [ -n "${!v}" ] || { echo "provision: --$v= is required" >&2; exit 2; }
done
case $api in v2 | v3) ;; *) echo "provision: --api=$api: want v2 or v3" >&2; exit 2 ;; esac
case $sysconfig in 003 | 004) ;; *) echo "provision: --sysconfig=$sysconfig: want 003 or 004" >&2; exit 2 ;; esac
log() { echo "provision[$name]: $*"; }

# --- 1. packages ------------------------------------------------------------------------------
pkgs=(etcd-server etcd-client docker.io)
[ -n "$deb" ] && pkgs+=("$(realpath "$deb")")
missing=0
for p in etcd-server etcd-client docker.io flannel-cpp; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing=1
done
if ((missing)) || [ -n "$deb" ]; then
  log "installing ${pkgs[*]}"
  # A machine that never ran apt-get update (a fresh VM) has no package lists; a node lab node
  # has its host's and no network.
  if ((apt_update)); then apt-get update -qq; fi
  compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# --- 2. certificates --------------------------------------------------------------------------
install -D -m 0644 "$certs/ca.pem" /etc/kubernetes/ssl/ca.pem
install -D -m 0644 "$certs/flanneld.pem" /etc/flanneld/ssl/flanneld.pem
install -D -m 0600 "$certs/flanneld-key.pem" /etc/flanneld/ssl/flanneld-key.pem
tls_v2=(--ca-file=/etc/kubernetes/ssl/ca.pem --cert-file=/etc/flanneld/ssl/flanneld.pem
        --key-file=/etc/flanneld/ssl/flanneld-key.pem)
tls_v3=(--cacert=/etc/kubernetes/ssl/ca.pem --cert=/etc/flanneld/ssl/flanneld.pem
        --key=/etc/flanneld/ssl/flanneld-key.pem)

# --- 3. etcd ----------------------------------------------------------------------------------
cluster= endpoints=
IFS=, read -ra member_list <<<"$members"
for m in "${member_list[@]}"; do
  cluster+="${cluster:+,}${m%%=*}=https://${m#*=}:2380"
  endpoints+="${endpoints:+,}https://${m#*=}:2379"
done
v2=false
[ "$api" = v2 ] && v2=true
cat >/etc/default/etcd.new <<EOC
# Written by provision.sh: member $name of the lab's three-member TLS cluster ($api API).
ETCD_NAME="$name"
ETCD_DATA_DIR="/var/lib/etcd/lab"
ETCD_LISTEN_PEER_URLS="https://$ip:2380"
ETCD_LISTEN_CLIENT_URLS="https://$ip:2379,https://127.0.0.1:2379"
ETCD_INITIAL_ADVERTISE_PEER_URLS="https://$ip:2380"
ETCD_ADVERTISE_CLIENT_URLS="https://$ip:2379"
ETCD_INITIAL_CLUSTER="$cluster"
ETCD_INITIAL_CLUSTER_STATE="new"
ETCD_INITIAL_CLUSTER_TOKEN="flannel-lab"
ETCD_ENABLE_V2="$v2"
ETCD_CERT_FILE="/etc/etcd/ssl/member.pem"
ETCD_KEY_FILE="/etc/etcd/ssl/member-key.pem"
ETCD_TRUSTED_CA_FILE="/etc/kubernetes/ssl/ca.pem"
ETCD_CLIENT_CERT_AUTH="true"
ETCD_PEER_CERT_FILE="/etc/etcd/ssl/member.pem"
ETCD_PEER_KEY_FILE="/etc/etcd/ssl/member-key.pem"
ETCD_PEER_TRUSTED_CA_FILE="/etc/kubernetes/ssl/ca.pem"
ETCD_PEER_CLIENT_CERT_AUTH="true"
EOC
if [[ ",$members," != *",$name=$ip,"* ]]; then
  rm -f /etc/default/etcd.new # not a member: a client of the cluster only (a node that joins later)
  systemctl disable --now etcd >/dev/null 2>&1 || true
elif ! cmp -s /etc/default/etcd.new /etc/default/etcd; then
  install -D -m 0644 "$certs/$name.pem" /etc/etcd/ssl/member.pem
  install -D -m 0600 -o etcd "$certs/$name-key.pem" /etc/etcd/ssl/member-key.pem
  mv /etc/default/etcd.new /etc/default/etcd
  log "etcd: member of $cluster"
  systemctl restart --no-block etcd
else
  rm -f /etc/default/etcd.new
fi

# --- 4. flanneld ------------------------------------------------------------------------------
mkdir -p /etc/sysconfig /var/log/flannel
if [ "$sysconfig" = 003 ]; then
  cat >/etc/sysconfig/flanneld <<EOC
# Flanneld configuration options  

# etcd url location.  Point this to the server where etcd runs
FLANNEL_ETCD_ENDPOINTS="$endpoints"

# etcd config key.  This is the configuration key that flannel queries
# For address range assignment
FLANNEL_ETCD_PREFIX="$prefix"

# Any additional options that you want to pass
FLANNEL_OPTIONS="--logtostderr=false --log_dir=/var/log/flannel/  --iface=$iface -etcd-cafile=/etc/kubernetes/ssl/ca.pem -etcd-certfile=/etc/flanneld/ssl/flanneld.pem -etcd-keyfile=/etc/flanneld/ssl/flanneld-key.pem"
EOC
else
  cat >/etc/sysconfig/flanneld <<EOC
# Flanneld configuration options  

# etcd url location.  Point this to the server where etcd runs
FLANNEL_ETCD_ENDPOINTS="$endpoints"

# etcd config key.  This is the configuration key that flannel queries
# For address range assignment
FLANNEL_ETCD_PREFIX="$prefix"

# Any additional options that you want to pass
#FLANNEL_OPTIONS=""
FLANNELD_IFACE="$iface"
FLANNELD_ETCD_CAFILE="/etc/kubernetes/ssl/ca.pem"
FLANNELD_ETCD_CERTFILE="/etc/flanneld/ssl/flanneld.pem"
FLANNELD_ETCD_KEYFILE="/etc/flanneld/ssl/flanneld-key.pem"
EOC
fi

# --- 5. the network config --------------------------------------------------------------------
etcdctl_v2() { ETCDCTL_API=2 etcdctl --endpoints="$endpoints" "${tls_v2[@]}" "$@"; }
etcdctl_v3() { ETCDCTL_API=3 etcdctl --endpoints="$endpoints" "${tls_v3[@]}" "$@"; }
if [ -n "$netconf" ]; then
  for _ in $(seq 1 240); do
    etcdctl_v3 endpoint health >/dev/null 2>&1 && break
    sleep 0.5
  done
  etcdctl_v3 endpoint health >/dev/null || { log "etcd cluster not healthy after 120 s" >&2; exit 1; }
  if [ "$api" = v2 ]; then
    etcdctl_v2 mkdir "$prefix" >/dev/null 2>&1 || true
    etcdctl_v2 mk "$prefix/config" "$netconf" >/dev/null 2>&1 || etcdctl_v2 get "$prefix/config" >/dev/null
  elif [ -z "$(etcdctl_v3 get --print-value-only "$prefix/config")" ]; then
    etcdctl_v3 put "$prefix/config" "$netconf" >/dev/null
  fi
  log "network config at $prefix/config: $netconf"
fi

if ((start_flanneld)); then
  systemctl enable --now --no-block flanneld
  log "flanneld enabled and starting"
fi
