#!/usr/bin/env bash
# The node lab: full systemd machines on one host, with no VM. Each node boots this machine's
# own OS with `systemd-nspawn -b` from an overlay of its root (the upper layer on a tmpfs of the
# node's, so nothing of the host changes), inside a network namespace of the lab's own. The nodes
# share a lab switch (a bridge in the lab's "switch" namespace); nothing is put in the host's
# root namespace.
#
#   source tests/nodes/lib.sh
#   nodes_up 3              # boots node1..node3 (10.252.0.1..3/24 on eth0, gateway .254)
#   node_exec 2 systemctl is-active flanneld
#   node_root 2             # the node's / as seen from the host (write files there)
#   node_up 4               # one more node, later
#   nodes_down              # powers off, unmounts, deletes the namespaces (trap it on EXIT)
#
# Names: every namespace, mount and folder carries NODE_LAB_PREFIX (default "fnode"), so two labs
# with different prefixes can run at once and a leftover lab is found and removed by nodes_down.
# Needs: root, systemd-container (systemd-nspawn), iproute2, util-linux (nsenter).
set -euo pipefail

NODE_LAB_PREFIX=${NODE_LAB_PREFIX:-fnode}
NODE_LAB_DIR=${NODE_LAB_DIR:-/tmp/$NODE_LAB_PREFIX-lab}
NODE_LAB_NET=${NODE_LAB_NET:-10.252.0}
NODE_LAB_BOOT_TIMEOUT=${NODE_LAB_BOOT_TIMEOUT:-120}

node_ip() { echo "$NODE_LAB_NET.$1"; }
node_ns() { echo "$NODE_LAB_PREFIX-n$1"; }
node_dir() { echo "$NODE_LAB_DIR/node$1"; }
node_root() { echo "$NODE_LAB_DIR/node$1/root"; }
switch_ns() { echo "$NODE_LAB_PREFIX-sw"; }
lab_log() { echo "nodes: $*" >&2; }

# The pid of node I's systemd-nspawn (found by its root folder, so a lab left by a process that
# died is found too), and of the node's systemd (PID 1 inside); nothing if not running.
node_nspawn_pid() { pgrep -f "^systemd-nspawn -b -D $(node_root "$1") " | head -1; }
node_stopped() { [ -z "$(node_nspawn_pid "$1")" ]; }
node_leader() {
  local pid
  pid=$(node_nspawn_pid "$1") && [ -n "$pid" ] || return 1
  pgrep -P "$pid" -x systemd | head -1
}

# node_exec I CMD...: runs CMD inside node I (all its namespaces, its root, as root).
node_exec() {
  local i=$1 leader
  shift
  leader=$(node_leader "$i") || { lab_log "node$i is not running"; return 1; }
  nsenter -t "$leader" -a -- "$@"
}

# node_sh I SCRIPT: a shell script inside node I.
node_sh() { node_exec "$1" sh -c "$2"; }

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every 0.2 s until it succeeds or time is up.
wait_for() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      lab_log "timed out after ${secs}s waiting for: $what"
      return 1
    fi
    sleep 0.2
  done
}

switch_up() {
  local sw
  sw=$(switch_ns)
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" addr add "$NODE_LAB_NET.254/24" dev br0
  ip -n "$sw" link set br0 up
}

# The node's network: eth0 on the lab switch, its address, a default route via the switch.
node_net_up() {
  local i=$1 ns sw
  ns=$(node_ns "$i") sw=$(switch_ns)
  ip netns add "$ns"
  ip -n "$sw" link add "n$i" type veth peer name eth0 netns "$ns"
  ip -n "$sw" link set "n$i" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$(node_ip "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$NODE_LAB_NET.254"
}

# The node's root: overlay of / with a tmpfs upper layer; files the node must have from its
# first boot (identity, names, docker's storage on an overlay root, cgroups docker can write).
node_root_up() {
  local i=$1 dir root
  dir=$(node_dir "$i") root=$(node_root "$i")
  mkdir -p "$dir/layers" "$root"
  mount -t tmpfs -o size=4g "$NODE_LAB_PREFIX-layers" "$dir/layers"
  mkdir "$dir/layers/upper" "$dir/layers/work"
  mount -t overlay "$NODE_LAB_PREFIX-root" \
    -o "lowerdir=/,upperdir=$dir/layers/upper,workdir=$dir/layers/work" "$root"
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
  echo "node$i" >"$root/etc/hostname"
  {
    echo "127.0.0.1 localhost"
    for j in $(seq 1 "$NODE_LAB_COUNT"); do echo "$(node_ip "$j") node$j"; done
  } >"$root/etc/hosts"
  mkdir -p "$root/etc/docker"
  # Docker's overlay2 cannot stack on the node's overlay root; vfs can. podman's overlay cannot
  # either: without this, podman.service and podman-restart.service (both enabled by Debian's
  # package) race at boot, the first records "overlay" before failing, the second then refuses
  # to fall back to vfs, and the node boots 'degraded' (seen on a fresh CI machine).
  echo '{"storage-driver": "vfs"}' >"$root/etc/docker/daemon.json"
  mkdir -p "$root/etc/containers"
  printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' \
    >"$root/etc/containers/storage.conf"
  cat >"$root/etc/systemd/system/node-lab-cgroups.service" <<'EOC'
[Unit]
Description=Node lab: cgroup v1 controllers writable (docker and podman create cgroups)
DefaultDependencies=no
Before=containerd.service docker.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mount -o remount,rw /sys/fs/cgroup; for m in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$m"; done'
[Install]
WantedBy=sysinit.target
EOC
  mkdir -p "$root/etc/systemd/system/sysinit.target.wants"
  ln -sf ../node-lab-cgroups.service "$root/etc/systemd/system/sysinit.target.wants/"
  # podman's auto-update asks a registry, and none is reachable from the lab.
  ln -sf /dev/null "$root/etc/systemd/system/podman-auto-update.service"
  ln -sf /dev/null "$root/etc/systemd/system/podman-auto-update.timer"
  # podman's API service and its restart-policy service: the lab drives podman through its CLI
  # only and has no container at boot, so nothing needs them.
  ln -sf /dev/null "$root/etc/systemd/system/podman.service"
  ln -sf /dev/null "$root/etc/systemd/system/podman.socket"
  ln -sf /dev/null "$root/etc/systemd/system/podman-restart.service"
  # Boot-time chores that failed once here under load (a 'degraded' node) and no test needs.
  ln -sf /dev/null "$root/etc/systemd/system/systemd-update-utmp-runlevel.service"
  ln -sf /dev/null "$root/etc/systemd/system/e2scrub_reap.service"
  # The host's own lab leftovers and build trees are not the node's business: an empty /tmp.
  mount -t tmpfs "$NODE_LAB_PREFIX-tmp" "$root/tmp"
}

# Each node's systemd needs cgroups of its own. nspawn (--keep-unit) splits the cgroup it starts
# in into payload/ (the node) and supervisor/ (itself): nodes started from one shell shared one
# payload/, so their systemds created and removed the same unit cgroups, and a unit failed at
# boot with 219/CGROUP when another node had just removed its cgroup (a different unit each
# time, ~1 boot in 15). So each node starts from a cgroup of its own, <ours>/<prefix>-node<I>, in
# every hierarchy that tracks processes: cgroup v2, and v1's name=systemd on a hybrid host.
# node_cgroups_new I prints their directories, after making them (none where cgroups cannot be
# made here: the node then shares ours, as before, and says so).
node_cgroups_new() {
  local i=$1 line path base
  while IFS= read -r line; do
    case $line in
      0::*)
        path=${line#0::} base=/sys/fs/cgroup
        [ -d /sys/fs/cgroup/unified ] && base=/sys/fs/cgroup/unified
        [ "$(stat -fc %T "$base")" = cgroup2fs ] || continue
        ;;
      *:name=systemd:*)
        path=${line#*:name=systemd:} base=/sys/fs/cgroup/systemd
        [ "$(stat -fc %T "$base" 2>/dev/null)" = cgroupfs ] || continue
        ;;
      *) continue ;;
    esac
    if mkdir -p "$base${path%/}/$NODE_LAB_PREFIX-node$i" 2>/dev/null; then
      echo "$base${path%/}/$NODE_LAB_PREFIX-node$i"
    else
      lab_log "node$i: cannot make a cgroup in $base; it shares this shell's"
    fi
  done </proc/self/cgroup
}

# Removes node I's cgroups (node_boot listed them), deepest first; only empty ones go, and the
# processes of a killed node take a moment to leave them.
node_cgroups_gone() {
  local cg left=0
  while read -r cg; do
    [ -d "$cg" ] || continue
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$cg" ] && left=1
  done <"$1"
  [ "$left" = 0 ]
}
node_cgroups_down() {
  local list
  list="$(node_dir "$1")/cgroups"
  [ -f "$list" ] || return 0
  wait_for 10 "node$1's cgroups to empty" node_cgroups_gone "$list" || true
}

node_boot() {
  local i=$1 dir cg
  dir=$(node_dir "$i")
  node_cgroups_new "$i" >"$dir/cgroups"
  (
    while read -r cg; do
      echo "$BASHPID" 2>/dev/null >"$cg/cgroup.procs" ||
        lab_log "node$i: cannot enter $cg; it shares this shell's cgroup"
    done <"$dir/cgroups"
    SYSTEMD_NSPAWN_API_VFS_WRITABLE=1 setsid -f systemd-nspawn -b -D "$(node_root "$i")" \
      --register=no --keep-unit --capability=all --console=passive --system-call-filter=@keyring \
      --network-namespace-path="/run/netns/$(node_ns "$i")" -M "node$i" \
      >"$dir/console.log" 2>&1 </dev/null
  )
}

# Waits until node I's systemd reports 'running' (fails on 'degraded' and the like, listing the
# failed units). Early in the boot nsenter may catch a process that is not yet the node's init;
# that and 'initializing'/'starting' are waited out. A unit that failed during the boot gets one
# more try (a safety net: the failures seen in CI, a different unit each time, came from nodes
# sharing a cgroup, see node_cgroups_new): its journal is logged, it is started again, and the
# node must then end 'running'. A unit that fails twice fails the lab.
node_wait_running() {
  local i=$1 state='' deadline=$((SECONDS + NODE_LAB_BOOT_TIMEOUT)) retried='' failed
  while ((SECONDS < deadline)); do
    state=$(node_exec "$i" systemctl is-system-running 2>/dev/null) || true
    case $state in
      running) return 0 ;;
      degraded)
        [ -z "$retried" ] || break
        retried=1
        failed=$(node_exec "$i" systemctl list-units --failed --plain --no-legend 2>/dev/null |
          awk '{ print $1 }')
        [ -n "$failed" ] || continue
        # shellcheck disable=SC2086 # one unit name a word
        node_retry_units "$i" $failed
        continue
        ;;
      maintenance | stopping | offline) break ;;
    esac
    sleep 0.2
  done
  lab_log "node$i booted to '$state', not 'running'; failed units:"
  node_exec "$i" systemctl --failed --no-pager >&2 || true
  return 1
}

# node_retry_units I UNIT...: logs why each unit failed on node I, then starts it once more.
node_retry_units() {
  local i=$1 unit
  shift
  for unit in "$@"; do
    lab_log "node$i: $unit failed during boot; its journal, then one more start:"
    node_exec "$i" journalctl -b -u "$unit" --no-pager -n 15 >&2 || true
    node_exec "$i" systemctl reset-failed "$unit" || true
    node_exec "$i" timeout 120 systemctl start "$unit" || true
  done
}

# nodes_up N: switch and N nodes, booted in parallel, each 'running' when this returns.
nodes_up() {
  NODE_LAB_COUNT=$1
  nodes_down_quiet
  mkdir -p "$NODE_LAB_DIR"
  echo "$NODE_LAB_COUNT" >"$NODE_LAB_DIR/count"
  switch_up
  local i
  for i in $(seq 1 "$NODE_LAB_COUNT"); do
    node_net_up "$i"
    node_root_up "$i"
    node_boot "$i"
  done
  for i in $(seq 1 "$NODE_LAB_COUNT"); do node_wait_running "$i"; done
  lab_log "$NODE_LAB_COUNT nodes running (prefix $NODE_LAB_PREFIX, $NODE_LAB_NET.0/24)"
}

# node_up I: one more node on a running lab (a node that joins later).
node_up() {
  node_net_up "$1"
  node_root_up "$1"
  node_boot "$1"
  node_wait_running "$1"
}

# Powers node I off: systemd's own shutdown, then, after NODE_LAB_POWEROFF_GRACE seconds, a
# SIGKILL to the node's init (the kernel ends every process of its PID namespace; the node's disk
# is a tmpfs thrown away anyway), then unmounts its root.
NODE_LAB_POWEROFF_GRACE=${NODE_LAB_POWEROFF_GRACE:-5}
node_down() {
  local i=$1 dir pid leader
  dir=$(node_dir "$i")
  pid=$(node_nspawn_pid "$i") || true
  if [ -n "$pid" ]; then
    # The node's PID 1, whatever it runs by then (systemd-shutdown waits 90 s for processes that
    # ignore SIGTERM, such as the init of a container docker's live-restore kept running).
    leader=$(pgrep -P "$pid" | head -1) || true
    node_exec "$i" systemctl poweroff --no-block >/dev/null 2>&1 || true
    # nspawn runs under setsid -f, so an exited one may linger as a zombie of a PID 1 that does
    # not reap: "gone" is "no running nspawn on this root" (pgrep does not match zombies).
    if ! wait_for "$NODE_LAB_POWEROFF_GRACE" "node$i to power off" node_stopped "$i" 2>/dev/null; then
      [ -n "$leader" ] && kill -KILL "$leader" 2>/dev/null
      wait_for 10 "node$i's nspawn to exit" node_stopped "$i" || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  local m
  for m in "$dir/root/tmp" "$dir/root" "$dir/layers"; do
    mountpoint -q "$m" && { umount "$m" 2>/dev/null || umount -l "$m"; }
  done
  ip netns del "$(node_ns "$i")" 2>/dev/null || true
  node_cgroups_down "$i"
}

# Everything with this lab's prefix: nodes, mounts, namespaces, the folder. Safe to run twice.
nodes_down_quiet() {
  local d i
  # Every node is told to power off first, so their shutdowns overlap; then each is awaited.
  for d in "$NODE_LAB_DIR"/node*; do
    [ -d "$d" ] || continue
    node_exec "${d##*/node}" systemctl poweroff --no-block >/dev/null 2>&1 || true
  done
  for d in "$NODE_LAB_DIR"/node*; do
    [ -d "$d" ] || continue
    i=${d##*/node}
    node_down "$i"
  done
  ip netns list | awk -v p="$NODE_LAB_PREFIX-" 'index($1, p) == 1 { print $1 }' |
    while read -r ns; do ip netns del "$ns"; done
  # Whatever is still mounted under the lab's folder (a node that would not stop), deepest first.
  awk -v d="$NODE_LAB_DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$NODE_LAB_DIR"
}

nodes_down() {
  nodes_down_quiet
  lab_log "lab $NODE_LAB_PREFIX is down"
}

# The number of nodes of a lab brought up earlier (by another process, e.g. scripts/nodes.sh).
nodes_count() { cat "$NODE_LAB_DIR/count"; }
