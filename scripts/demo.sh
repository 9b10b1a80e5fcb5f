#!/usr/bin/env bash
# The demo (README): a multi-host flannel lab on one machine, no etcd needed.
#
#   sudo scripts/demo.sh          install what is missing, build, start 3 lab hosts (network
#                                 namespaces fldemo-h1..3 on a bridge in fldemo-hub), one flanneld
#                                 each on one shared SQLite file, wait until every host holds a
#                                 lease with a distinct subnet, print `flannelctl subnets list`,
#                                 ping between pods on different hosts (data-plane backends),
#                                 measure the agents' idle CPU, then clean everything up
#   sudo scripts/demo.sh --keep   the same, but leave the lab running (inspect it with
#                                 `ip netns exec fldemo-h1 ...`); remove it with:
#   sudo scripts/demo.sh down     stop the agents and delete the namespaces and files
#
# HOSTS=N (1..250, default 3) lab hosts. BACKEND=vxlan|host-gw|udp|wireguard|alloc (default
# vxlan). IDLE_SECONDS=S (default 20, 0 skips) the idle window over which the agents' own CPU is
# measured. Each pod pings the pods of up to 3 other hosts (next, halfway round, previous), and
# pod 1 pings every other pod when HOSTS <= 10; PING_SECONDS (default 30) bounds the retries.
#
# With wireguard, every flanneld runs in its own mount namespace with private tmpfs on
# /run/flannel and /run/wireguard, so lab hosts do not share wireguard-go's UAPI socket directory
# or the WireGuard key file /run/flannel/wgkey (and no socket or key outlives its host).
# Everything lives in namespaces named fldemo-*; nothing is added to the root namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE=/run/flannel-demo
PREFIX=fldemo
RUN_FLANNEL_MARKER=/run/.fldemo-made-run-flannel  # we made /run/flannel (mount point): rmdir it

# The pids of every process in a demo network namespace (flanneld, wireguard-go, ping, ...),
# found by namespace identity, so a stale pid is never killed by mistake.
demo_pids() {
  local nsfiles=("/run/netns/$PREFIX-"*)
  [ -e "${nsfiles[0]}" ] || return 0
  local inodes
  inodes=$(stat -L -c 'net:[%i]' "${nsfiles[@]}" 2>/dev/null || true)
  [ -n "$inodes" ] || return 0
  find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' -printf '%h %l\n' 2>/dev/null |
    awk -v want="$inodes" 'BEGIN { n = split(want, w, "\n"); for (k = 1; k <= n; k++) ns[w[k]] = 1 }
                           ($2 in ns) { split($1, p, "/"); print p[3] }' || true
}

# A process that still runs (a zombie has finished).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

down() {
  local mine pids p left
  # Our own background jobs (an agent between fork and entering its namespace) and everything
  # inside the demo's namespaces.
  mine=$(jobs -p 2>/dev/null || true)
  pids=$({ echo "$mine"; demo_pids; } | grep . | sort -un || true)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 100); do  # up to 10 s for a clean exit (each agent stops its wireguard-go)
      left=""
      for p in $pids; do alive "$p" && left="$left $p"; done
      [ -z "$left" ] && break
      sleep 0.1
    done
    if [ -n "$left" ]; then
      echo "demo: killing what did not stop:$left" >&2
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null || true
    fi
    # A stray process that entered a namespace meanwhile.
    pids=$(demo_pids)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  fi
  ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-" | sed 's/^/netns del /' |
    ip -force -batch - 2>/dev/null || true
  rm -rf "$STATE"
  if [ -e "$RUN_FLANNEL_MARKER" ]; then
    rmdir /run/flannel 2>/dev/null || true
    rm -f "$RUN_FLANNEL_MARKER"
  fi
}

if [ "${1:-}" = "down" ]; then
  down
  echo "demo: lab removed"
  exit 0
fi
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

HOSTS=${HOSTS:-3}
BACKEND=${BACKEND:-vxlan}
IDLE_SECONDS=${IDLE_SECONDS:-20}
PING_SECONDS=${PING_SECONDS:-30}
if ! [[ "$HOSTS" =~ ^[0-9]+$ ]] || [ "$((10#$HOSTS))" -lt 1 ] || [ "$((10#$HOSTS))" -gt 250 ]; then
  echo "demo: HOSTS must be a number from 1 to 250 (one lab subnet 10.250.0.0/24), not '$HOSTS'" >&2
  exit 2
fi
HOSTS=$((10#$HOSTS))
case "$BACKEND" in
  vxlan | host-gw | udp | wireguard | alloc) ;;
  *)
    echo "demo: BACKEND must be vxlan, host-gw, udp, wireguard or alloc, not '$BACKEND'" >&2
    exit 2
    ;;
esac
for v in IDLE_SECONDS PING_SECONDS; do
  if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then
    echo "demo: $v must be a whole number of seconds, not '${!v}'" >&2
    exit 2
  fi
done

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (network namespaces); run: sudo $0 $*" >&2
  exit 1
fi

# One demo at a time on this machine (they share the fldemo-* names).
exec 9<"$0"
if ! flock -n 9; then
  echo "demo: another demo is running on this machine; wait for it" >&2
  exit 1
fi

bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target flanneld flannelctl mk_docker_opts_sh >/dev/null
BIN=$ROOT/build/bin

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f s", ms / 1000 }'; }

down  # a previous run's leftovers
if [ "$KEEP" -eq 0 ]; then trap down EXIT; fi
trap 'exit 130' INT TERM HUP  # exit runs the EXIT trap, which cleans up
mkdir -p "$STATE"
DB=$STATE/store.db
if [ "$BACKEND" = wireguard ]; then  # mount points of each agent's private tmpfs
  if [ ! -d /run/flannel ]; then
    mkdir /run/flannel && touch "$RUN_FLANNEL_MARKER"
  fi
  mkdir -p /run/wireguard
fi

# On failure: keep the logs (the lab itself goes) and say where.
fail() {
  local keep
  keep=$(mktemp -d /tmp/fldemo-logs.XXXXXX)
  cp "$STATE"/*.log "$keep"/ 2>/dev/null || true
  echo "demo: $*; agent logs kept in $keep" >&2
  exit 1
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(now_ms)
{
  echo "netns add $PREFIX-hub"
  for i in $(seq 1 "$HOSTS"); do echo "netns add $PREFIX-h$i"; done
} | ip -batch -
# A fixed MAC: a bridge without one takes its lowest port MAC, and a host that joins later can
# change it under the ARP entries of the others.
{
  echo "link set lo up"
  echo "link add br0 address 02:fa:00:00:00:fe type bridge"
  echo "addr add 10.250.0.254/24 dev br0"
  echo "link set br0 up"
  for i in $(seq 1 "$HOSTS"); do
    echo "link add v$i type veth peer name eth0 netns $PREFIX-h$i"
    echo "link set v$i master br0 up"
  done
} | ip -n $PREFIX-hub -batch -
for i in $(seq 1 "$HOSTS"); do
  printf '%s\n' "link set lo up" "addr add 10.250.0.$i/24 dev eth0" "link set eth0 up" \
    "route add default via 10.250.0.254" | ip -n "$PREFIX-h$i" -batch -
done
T_LAB=$(now_ms)
echo "demo: $HOSTS lab hosts in $(secs $((T_LAB - T0)))"

echo "demo: network config (backend $BACKEND)"
"$BIN/flannelctl" -store=sqlite:$DB config set "{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Type\":\"$BACKEND\"}}"

# Each agent runs in its network namespace (`ip netns exec`, which also remounts /sys). With
# wireguard, first in a mount namespace of its own with private /run/flannel (the key file) and
# /run/wireguard (wireguard-go's UAPI sockets); `ip netns exec` then makes its mount namespace
# as a copy of that one, so it keeps the tmpfs. The other backends use neither directory, so
# they skip the extra unshare and mounts (~20 ms of CPU a host). Every step execs, so $! is
# flanneld's pid.
LAUNCH=(ip netns exec)
if [ "$BACKEND" = wireguard ]; then
  LAUNCH=(unshare --mount --propagation private sh -c
    'mount -t tmpfs -o mode=0755 fldemo-run /run/flannel &&
     mount -t tmpfs -o mode=0755 fldemo-wg /run/wireguard && exec ip netns exec "$@"' sh)
fi
T_START=$(now_ms)
AGENT_PIDS=()
for i in $(seq 1 "$HOSTS"); do
  "${LAUNCH[@]}" "$PREFIX-h$i" "$BIN/flanneld" -store=sqlite:$DB -iface=eth0 \
    "-subnet-file=$STATE/h$i.env" -healthz-port=8471 -healthz-ip=127.0.0.1 \
    >"$STATE/h$i.log" 2>&1 &
  echo $! >"$STATE/h$i.pid"
  AGENT_PIDS+=($!)
done
T_SPAWNED=$(now_ms)
echo "demo: $HOSTS agents started in $(secs $((T_SPAWNED - T_START)))"

# The agents' own CPU while the lab idles: utime+stime of each flanneld plus its reaped children
# (cutime+cstime), and apart the live wireguard-go children (the wireguard data plane).
TICK=$(getconf CLK_TCK)
agent_pids() { cat "$STATE"/h*.pid; }
child_pids() {
  local p
  for p in $(agent_pids); do cat /proc/"$p"/task/*/children 2>/dev/null || true; done | tr ' ' '\n' |
    grep . || true
}
cpu_ticks() {  # the sum over the given pids; $1 = 1 also counts reaped children
  local with_children=$1 p s f sum=0
  shift
  for p in "$@"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"${s##*) }"  # f[0] is field 3 (state): utime is f[11], stime f[12]
    sum=$((sum + f[11] + f[12]))
    [ "$with_children" -eq 1 ] && sum=$((sum + f[13] + f[14]))
  done
  echo "$sum"
}
pct() {  # ticks [divisor] -> % of one core over the idle window
  awk -v t="$1" -v n="${2:-1}" -v hz="$TICK" -v s="$IDLE_SECONDS" \
    'BEGIN { printf "%.2f%%", 100 * t / n / hz / s }'
}

# All leased: HOSTS leases in the store, with distinct subnets, one per lab host's public IP.
# One flannelctl and one awk a round: "leases distinct-subnets distinct-lab-IPs distinct-keys".
lease_counts() {
  { "$BIN/flannelctl" -store=sqlite:$DB subnets list --json 2>/dev/null || true; } |
    awk 'function once(set, x) { if (x in set) return 0; set[x] = 1; return 1 }
         /^    "key": /                          { n++ }
         /^    "subnet": "/                      { s += once(sub4, $2) }
         /"PublicIP": "10\.250\.0\.[0-9]+"/     { ip += once(ips, $2) }
         /"PublicKey": "/                        { k += once(keys, $2) }
         END { print n + 0, s + 0, ip + 0, k + 0 }'
}
LEASE_DEADLINE=$((T_START + 30000 + HOSTS * 200))
while :; do
  read -r nlease nsub nip nkey < <(lease_counts)
  [ "$nsub" -eq "$HOSTS" ] && [ "$nip" -eq "$HOSTS" ] && [ "$nlease" -eq "$HOSTS" ] && break
  if [ "$(now_ms)" -gt "$LEASE_DEADLINE" ]; then
    fail "after $(secs $(($(now_ms) - T_START))) $nlease leases, $nsub distinct subnets, $nip lab hosts (want $HOSTS)"
  fi
  for i in "${!AGENT_PIDS[@]}"; do  # kill -0 is a builtin; an exited agent is reaped by bash
    kill -0 "${AGENT_PIDS[i]}" 2>/dev/null ||
      { tail -5 "$STATE/h$((i + 1)).log" >&2; fail "flanneld of host $((i + 1)) exited"; }
  done
  sleep 0.05
done
T_LEASED=$(now_ms)
# The polling above sees the leases late by up to one round (a flannelctl); the agents' logs say
# when the last one was written: ms from T_START to the latest first "Lease acquired".
last_lease_ms() {
  local hms
  printf -v hms '%(%H %M %S)T' $((T_START / 1000))
  awk -v hms="$hms" -v ms=$((T_START % 1000)) '
    BEGIN { split(hms, t, " "); t0 = t[1] * 3600 + t[2] * 60 + t[3] + ms / 1000; max = -1 }
    /Lease acquired/ && !(FILENAME in seen) {
      seen[FILENAME] = 1
      split($2, c, ":"); x = c[1] * 3600 + c[2] * 60 + c[3] - t0
      if (x < -43200) x += 86400  # midnight
      if (x > max) max = x
    }
    END { printf "%.0f\n", max * 1000 }' "$STATE"/h*.log
}
T_LAST_LEASE=$((T_START + $(last_lease_ms)))
echo "demo: all $HOSTS hosts leased, distinct subnets, $(secs $((T_LEASED - T_START))) after starting the agents (the last agent logged its lease at $(secs $((T_LAST_LEASE - T_START))))"
if [ "$BACKEND" = wireguard ]; then
  [ "$nkey" -eq "$HOSTS" ] || fail "$nkey distinct WireGuard public keys for $HOSTS hosts"
  echo "demo: $nkey distinct WireGuard public keys"
fi

# Ready: the subnet file is written once the backend's device is up.
for i in $(seq 1 "$HOSTS"); do
  while [ ! -s "$STATE/h$i.env" ]; do
    [ "$(now_ms)" -le "$LEASE_DEADLINE" ] || fail "host $i wrote no subnet file"
    sleep 0.05
  done
done
T_READY=$(now_ms)
echo "demo: all $HOSTS agents ready (subnet.env written), $(secs $((T_READY - T_START))) after starting them"
# What starting cost: every agent's CPU so far (its launch through ip netns exec included, the
# same process) with its reaped children (iptables).
START_CPU_MS=$(($(cpu_ticks 1 "${AGENT_PIDS[@]}") * 1000 / TICK))

echo
if [ "$HOSTS" -le 10 ]; then
  for i in $(seq 1 "$HOSTS"); do
    grep "Lease acquired" "$STATE/h$i.log" | sed "s/^/h$i: /" || true
  done
  echo
  "$BIN/flannelctl" -store=sqlite:$DB subnets list
else
  "$BIN/flannelctl" -store=sqlite:$DB subnets list | sed -n 1,6p  # reads all: no SIGPIPE
  echo "... ($HOSTS leases)"
fi
echo
echo "demo: subnet.env of host 1:"
cat "$STATE/h1.env"
echo "demo: mk-docker-opts.sh -k DOCKER_NETWORK_OPTIONS for host 1:"
"$BIN/mk-docker-opts.sh" -f "$STATE/h1.env" -k DOCKER_NETWORK_OPTIONS -d "$STATE/h1.docker"
cat "$STATE/h1.docker"

# The hosts whose pods pod i pings: next, halfway round and previous; pod 1 pings all when
# HOSTS <= 10.
targets() {
  local i=$1 o j seen=" "
  local offsets="1 $((HOSTS / 2)) $((HOSTS - 1))"
  [ "$i" -eq 1 ] && [ "$HOSTS" -le 10 ] && offsets=$(seq 1 $((HOSTS - 1)))
  for o in $offsets; do
    j=$(((i - 1 + o) % HOSTS + 1))
    [ "$j" -eq "$i" ] && continue
    case "$seen" in *" $j "*) continue ;; esac
    seen="$seen$j "
    echo "$j"
  done
}

# Pings from pod i to its targets, each retried until it answers or the deadline passes.
ping_from() {
  local i=$1 j dst ok t
  for j in $(targets "$i"); do
    dst=$(cat "$STATE/pod$j.ip")
    ok=0
    while :; do
      t=$(now_ms)
      if nsenter "--net=/run/netns/$PREFIX-pod$i" ping -n -q -c 1 -W 1 "$dst" >/dev/null 2>&1; then
        ok=1
        break
      fi
      [ "$t" -lt "$PING_DEADLINE" ] || break
      [ $(($(now_ms) - t)) -ge 500 ] || sleep 0.2
    done
    if [ "$ok" -eq 1 ]; then
      echo "pod$i -> pod$j ($dst): ok"
    else
      echo "pod$i -> pod$j ($dst): FAILED"
    fi
  done
}

T_PING=""
if [ "$BACKEND" != "alloc" ]; then
  echo
  echo "demo: one pod per host on cni0, pinging across hosts over $BACKEND"
  for i in $(seq 1 "$HOSTS"); do echo "netns add $PREFIX-pod$i"; done | ip -batch -
  for i in $(seq 1 "$HOSTS"); do
    gw=$(grep -m1 '^FLANNEL_SUBNET=' "$STATE/h$i.env")
    gw=${gw#FLANNEL_SUBNET=}  # 10.5.34.1/24: the bridge's address; the pod gets .2
    pod=$PREFIX-pod$i
    IFS=./ read -r a b c d len <<<"$gw"
    podip=$a.$b.$c.$((d + 1))/$len
    printf '%s\n' "link add cni0 address 02:fa:00:00:01:fe type bridge" "addr add $gw dev cni0" \
      "link set cni0 up" "link add pod$i type veth peer name eth0 netns $pod" \
      "link set pod$i master cni0 up" | ip -n "$PREFIX-h$i" -batch -
    nsenter "--net=/run/netns/$PREFIX-h$i" sysctl -qw net.ipv4.ip_forward=1
    printf '%s\n' "link set lo up" "addr add $podip dev eth0" "link set eth0 up" \
      "route add default via ${gw%/*}" | ip -n "$pod" -batch -
    echo "${podip%/*}" >"$STATE/pod$i.ip"
  done
  T_PODS=$(now_ms)
  echo "demo: $HOSTS pods in $(secs $((T_PODS - T_READY)))"
  PING_DEADLINE=$((T_PODS + PING_SECONDS * 1000))
  pids=()
  for i in $(seq 1 "$HOSTS"); do
    ping_from "$i" >"$STATE/ping$i.out" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  T_PING=$(now_ms)
  npairs=$(cat "$STATE"/ping*.out | wc -l)
  nfail=$(cat "$STATE"/ping*.out | grep -c FAILED || true)
  if [ "$HOSTS" -le 10 ]; then
    for i in $(seq 1 "$HOSTS"); do cat "$STATE/ping$i.out"; done
  else
    grep -h FAILED "$STATE"/ping*.out || true
  fi
  [ "$nfail" -eq 0 ] || fail "$nfail of $npairs pings failed"
  echo "demo: all $npairs pod pairs pinging, $(secs $((T_PING - T_START))) after starting the agents"
fi

IDLE_TEXT="skipped (IDLE_SECONDS=0)"
if [ "$IDLE_SECONDS" -gt 0 ]; then
  echo
  echo "demo: measuring the agents' CPU over ${IDLE_SECONDS} s of idle lab"
  mapfile -t APIDS < <(agent_pids)
  mapfile -t CPIDS < <(child_pids)
  a0=$(cpu_ticks 1 "${APIDS[@]}")
  c0=$(cpu_ticks 0 "${CPIDS[@]}")
  sleep "$IDLE_SECONDS" &
  wait $!  # a signal interrupts the wait (not a foreground sleep): the trap cleans up at once
  for p in "${APIDS[@]}"; do alive "$p" || fail "a flanneld (pid $p) exited while idle"; done
  a1=$(cpu_ticks 1 "${APIDS[@]}")
  c1=$(cpu_ticks 0 "${CPIDS[@]}")
  IDLE_TEXT="flanneld x$HOSTS $(pct $((a1 - a0))) of one core ($(pct $((a1 - a0)) "$HOSTS") per agent)"
  [ "${#CPIDS[@]}" -eq 0 ] || IDLE_TEXT="$IDLE_TEXT; their ${#CPIDS[@]} children (wireguard-go) $(pct $((c1 - c0)))"
fi

echo
echo "demo: HOSTS=$HOSTS BACKEND=$BACKEND (load average at the start: $LOAD0)"
echo "  lab namespaces        $(secs $((T_LAB - T0)))"
echo "  agents started        $(secs $((T_SPAWNED - T_START)))"
echo "  all leased            $(secs $((T_LEASED - T_START))) after starting the agents ($(secs $((T_LEASED - T0))) from the start); last lease logged at $(secs $((T_LAST_LEASE - T_START)))"
echo "  all ready             $(secs $((T_READY - T_START))) after starting the agents; their CPU until then $(secs "$START_CPU_MS") ($((START_CPU_MS / HOSTS)) ms per agent)"
if [ -n "$T_PING" ]; then
  echo "  all pinging           $(secs $((T_PING - T_START))) after starting the agents ($(secs $((T_PING - T0))) from the start)"
fi
echo "  idle CPU (${IDLE_SECONDS} s)      $IDLE_TEXT"

if [ "$KEEP" -eq 1 ]; then
  echo
  echo "demo: lab left running (namespaces $PREFIX-*); remove it with: sudo $0 down"
else
  echo
  T_DOWN=$(now_ms)
  down
  trap - EXIT
  echo "demo: done; lab removed in $(secs $(($(now_ms) - T_DOWN)))"
fi
