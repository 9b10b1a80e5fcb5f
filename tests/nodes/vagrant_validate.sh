#!/usr/bin/env bash
# ctest nodes_vagrant_validate: Debian's `vagrant validate` on vagrant/Vagrantfile, so the VM lab's
# file never rots (its Ruby, every config key, the provisioner's path to provision.sh), for each
# FLANNEL_ETCD_API. No VM is booted, no box downloaded, no provider needed (--ignore-provider:
# this machine has neither VirtualBox nor libvirt), and nothing is written under vagrant/: the
# before-up trigger (certificates, package) must not run, and validate must not need the package.
# Vagrant's home and the project's .vagrant state go to a temporary folder.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lab=$(cd "$here/../../vagrant" && pwd)
command -v vagrant >/dev/null || { echo "vagrant_validate: no vagrant (scripts/deps.sh installs Debian's)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
before=$(ls -A "$lab")
for api in v2 v3; do
  if ! (cd "$lab" && env VAGRANT_HOME="$tmp/home" VAGRANT_DOTFILE_PATH="$tmp/dot" \
      VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_COLOR=1 FLANNEL_DEB="$tmp/no-such.deb" \
      FLANNEL_ETCD_API=$api timeout 300 vagrant validate --ignore-provider) >"$tmp/out" 2>&1; then
    cat "$tmp/out" >&2
    echo "vagrant_validate: FAIL: vagrant validate rejects vagrant/Vagrantfile (FLANNEL_ETCD_API=$api)" >&2
    exit 1
  fi
  grep -q "validated successfully" "$tmp/out" || {
    cat "$tmp/out" >&2
    echo "vagrant_validate: FAIL: no 'validated successfully' (FLANNEL_ETCD_API=$api)" >&2
    exit 1
  }
  echo "ok: vagrant validate accepts vagrant/Vagrantfile (FLANNEL_ETCD_API=$api)"
done
after=$(ls -A "$lab")
if [ "$before" != "$after" ]; then
  echo "vagrant_validate: FAIL: validate changed vagrant/ (a trigger ran?):" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
echo "ok: validate wrote nothing under vagrant/ (no trigger ran)"
