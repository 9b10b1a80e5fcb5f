#!/usr/bin/env bash
# make-certs.sh DIR IP [IP...]: the lab's TLS material, as seed 000 builds its etcd cluster's:
# one CA, one certificate per etcd member (server and peer: serverAuth + clientAuth, SANs for
# its address and loopback) and one client certificate for flanneld and etcdctl. Used by the
# node lab (tests/nodes) and by the Vagrantfile; nothing here is secret beyond the lab.
#   DIR/ca.pem  DIR/node<i>.pem DIR/node<i>-key.pem (i = 1.. in the order of the IPs)
#   DIR/flanneld.pem DIR/flanneld-key.pem
# Keeps an existing DIR/ca.pem (and everything signed by it) so a re-run changes nothing.
set -euo pipefail
dir=$1
shift
(($#)) || { echo "usage: $0 DIR IP [IP...]" >&2; exit 2; }
mkdir -p "$dir"
cd "$dir"
[ -f ca.pem ] && [ -f flanneld.pem ] && exit 0

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
sign() { # sign NAME CN EXTENSIONS
  key "$1-key.pem"
  openssl req -new -key "$1-key.pem" -subj "/CN=$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
    -extfile <(printf '%s\n' "$3") -out "$1.pem" 2>/dev/null
  rm -f "$1.csr"
}

key ca-key.pem
openssl req -x509 -new -key ca-key.pem -subj "/CN=flannel-lab-ca" -days 3650 -out ca.pem
i=1
for ip in "$@"; do
  sign "node$i" "node$i" "subjectAltName=IP:$ip,IP:127.0.0.1,DNS:node$i,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
  i=$((i + 1))
done
sign flanneld flanneld "extendedKeyUsage=clientAuth"
chmod 0644 ./*.pem
