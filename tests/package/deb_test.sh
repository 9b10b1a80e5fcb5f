#!/usr/bin/env bash
# ctest -L package: builds the .deb with cpack from a built tree into a temp dir and checks it as
# a distribution would, without touching this machine's root filesystem or its systemd:
#   - the file list is exactly expected_files.txt (directories aside)
#   - control: name, version from the project, shlibdeps-computed Depends, iptables
#   - conffiles is /etc/default/flanneld; maintainer scripts reload systemd, never start/enable
#   - lintian reports no errors (its whole output is printed)
#   - the unit says what the seeds' unit says; systemd-analyze verify accepts unit and drop-in
#   - flanneld-start with seed 003's and seed 004's /etc/sysconfig/flanneld execs exactly the
#     argv the distribution's wrapper did (a fake flanneld named by FLANNEL_START_FLANNELD)
#   - dpkg installs it into a scratch root (dpkg --root), removes it, purges the conffile
# Usage: deb_test.sh BUILD_DIR SOURCE_DIR PROJECT_VERSION
# shellcheck disable=SC2016  # many literal $VARs: unit lines, scripts written for later
set -euo pipefail

build=$1 src=$2 version=$3
here="$src/tests/package"
work=$(mktemp -d /tmp/flannel-deb-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

# --- build -----------------------------------------------------------------------------------
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/out" >"$work/cpack.log" 2>&1 || {
  cat "$work/cpack.log" >&2
  echo "FAIL: cpack could not build the package" >&2
  exit 1
}
debs=("$work"/out/*.deb)
if [ "${#debs[@]}" -ne 1 ] || [ ! -f "${debs[0]}" ]; then
  echo "FAIL: expected one .deb in $work/out, got: ${debs[*]}" >&2
  exit 1
fi
deb=${debs[0]}
ok "built $(basename "$deb")"

# --- file list -------------------------------------------------------------------------------
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' | sort >"$work/files"
if diff -u <(sort "$here/expected_files.txt") "$work/files"; then
  ok "file list is expected_files.txt"
else
  fail "file list differs from tests/package/expected_files.txt (- expected, + in the package)"
fi
perm() { dpkg-deb -c "$deb" | awk -v f="./${1#/}" '$6 == f { print $1, $2 }'; }
for exe in /usr/bin/flanneld /usr/bin/flannelctl /usr/bin/flanneld-start \
           /usr/libexec/flannel/mk-docker-opts.sh; do
  [ "$(perm "$exe")" = "-rwxr-xr-x root/root" ] || fail "$exe is '$(perm "$exe")', want -rwxr-xr-x root/root"
done

# --- control ---------------------------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = flannel-cpp ] || fail "Package is '$(field Package)', want flannel-cpp"
[ "$(field Version)" = "$version-1" ] || fail "Version is '$(field Version)', want $version-1"
depends=$(field Depends)
for lib in libc6 libstdc++6 libcurl4 libssl3 libsqlite3-0 libnl-3-200 libnl-route-3-200 libnl-genl-3-200 iptables; do
  [[ "$depends" == *"$lib"* ]] || fail "Depends lacks $lib (shlibdeps not run?): $depends"
done
ok "control: $(field Package) $(field Version); Depends: $depends"

# --- conffiles and maintainer scripts ------------------------------------------------------
dpkg-deb -e "$deb" "$work/control"
if [ "$(cat "$work/control/conffiles" 2>/dev/null)" = "/etc/default/flanneld" ]; then
  ok "conffiles: /etc/default/flanneld"
else
  fail "conffiles is '$(cat "$work/control/conffiles" 2>/dev/null)', want /etc/default/flanneld"
fi
for s in postinst prerm postrm; do
  [ -x "$work/control/$s" ] || { fail "maintainer script $s missing or not executable"; continue; }
  sh -n "$work/control/$s" || fail "$s is not valid sh"
  if grep -En '(systemctl|deb-systemd-invoke)[^#]*\b(start|enable|restart)\b' "$work/control/$s" |
     grep -Ev '^[0-9]+:[[:space:]]*#' | grep -v 'try-restart'; then
    fail "$s starts or enables a service (lines above); installs must never start flanneld"
  fi
  grep -q 'DPKG_ROOT' "$work/control/$s" || fail "$s ignores DPKG_ROOT (would touch the host from a scratch root)"
done
grep -q 'daemon-reload' "$work/control/postinst" || fail "postinst does not reload systemd"
grep -q 'daemon-reload' "$work/control/postrm" || fail "postrm does not reload systemd"

# --- lintian ---------------------------------------------------------------------------------
if command -v lintian >/dev/null; then
  lintian_rc=0
  lintian --fail-on error --tag-display-limit 0 "$deb" >"$work/lintian.log" 2>&1 || lintian_rc=$?
  echo "lintian output (exit $lintian_rc):"
  sed 's/^/  /' "$work/lintian.log"
  [ "$lintian_rc" -eq 0 ] || fail "lintian reports errors (above)"
  ! grep -q '^E:' "$work/lintian.log" || fail "lintian printed E: tags"
else
  fail "lintian is not installed (scripts/deps.sh installs it)"
fi

# --- the installed files ---------------------------------------------------------------------
root="$work/root"
dpkg-deb -x "$deb" "$root"
unit="$root/usr/lib/systemd/system/flanneld.service"
for line in 'Type=notify' 'Before=docker.service' 'After=etcd.service' \
            'EnvironmentFile=-/etc/default/flanneld' 'EnvironmentFile=-/etc/sysconfig/flanneld' \
            'ExecStart=/usr/bin/flanneld-start $FLANNEL_OPTIONS' \
            'ExecStartPost=/usr/libexec/flannel/mk-docker-opts.sh -k DOCKER_NETWORK_OPTIONS -d /run/flannel/docker' \
            'Restart=on-failure' 'WantedBy=multi-user.target'; do
  grep -qxF -- "$line" "$unit" || fail "flanneld.service lacks the line: $line"
done
dropin="$root/usr/lib/systemd/system/docker.service.d/flannel.conf"
grep -qxF 'EnvironmentFile=-/run/flannel/docker' "$dropin" || fail "docker drop-in lacks EnvironmentFile=-/run/flannel/docker"
grep -qE '^ExecStart=.*\$DOCKER_NETWORK_OPTIONS' "$dropin" || fail "docker drop-in's ExecStart lacks \$DOCKER_NETWORK_OPTIONS"
if grep -Ev '^[[:space:]]*(#|$)' "$root/etc/default/flanneld"; then
  fail "/etc/default/flanneld sets variables (lines above); it must be all comments"
fi
ok "unit, drop-in and /etc/default/flanneld say what they should"

# systemd-analyze verify: the unit as installed in the scratch root (with a copy of this host's
# own units for the targets it names), and the drop-in applied to a stand-in docker.service
# (docker is not installed here).
if command -v systemd-analyze >/dev/null; then
  cp -a /usr/lib/systemd/system/*.target "$root/usr/lib/systemd/system/"
  mkdir -p "$root/usr/sbin"
  printf '#!/bin/sh\n' >"$root/usr/sbin/dockerd"
  chmod 755 "$root/usr/sbin/dockerd"
  printf '[Unit]\nDescription=stand-in docker\n[Service]\nType=notify\nExecStart=/usr/sbin/dockerd\n' \
    >"$root/usr/lib/systemd/system/docker.service"
  if SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --root="$root" \
       flanneld.service docker.service >"$work/verify.log" 2>&1; then
    ok "systemd-analyze verify accepts flanneld.service and docker.service + flannel.conf"
  else
    cat "$work/verify.log" >&2
    fail "systemd-analyze verify rejects the unit or the drop-in (above)"
  fi
  rm -f "$root/usr/sbin/dockerd" "$root/usr/lib/systemd/system/docker.service" \
        "$root"/usr/lib/systemd/system/*.target
else
  fail "systemd-analyze is not installed"
fi

# --- flanneld-start --------------------------------------------------------------------------
fake="$work/fake-flanneld"
printf '#!/bin/sh\nfor a in "$@"; do printf "%%s\\n" "$a"; done\n' >"$fake"
chmod 755 "$fake"
# What systemd does: read the environment file, then run ExecStart with $FLANNEL_OPTIONS split
# into words (an unset variable gives no word at all).
run_start() {  # run_start ENVFILE -> one argv element per line
  env -i PATH=/usr/bin:/bin FLANNEL_START_FLANNELD="$fake" bash -c '
    set -a; . "$1"; set +a
    # shellcheck disable=SC2086  # split like systemd splits $FLANNEL_OPTIONS
    exec "$2" ${FLANNEL_OPTIONS:-}' _ "$1" "$root/usr/bin/flanneld-start"
}
check_argv() {  # check_argv NAME ENVFILE EXPECTED-ARG...
  local name=$1 file=$2
  shift 2
  if diff -u <(printf '%s\n' "$@" | sed '/^$/d') <(run_start "$file"); then
    ok "flanneld-start with $name execs: $*"
  else
    fail "flanneld-start with $name: argv differs (- expected, + exec'd)"
  fi
}
check_argv "seed 003's sysconfig" "$here/sysconfig-seed003" \
  -etcd-endpoints=http://192.168.6.15:2379,http://192.168.6.2:2379,http://192.168.6.5:2379 \
  -etcd-prefix=/jxdd/network --logtostderr=false --log_dir=/var/log/flannel/ --iface=eth0
check_argv "seed 004's sysconfig" "$here/sysconfig-seed004" \
  -etcd-endpoints=http://sz-pg-oam-docker-test-001.tendcloud.com:2379 \
  -etcd-prefix=/kube-centos/network
check_argv "the packaged /etc/default/flanneld (all comments)" "$root/etc/default/flanneld" ""
printf 'FLANNEL_STORE="sqlite:/var/lib/flannel/store.db"\nFLANNEL_ETCD="http://10.0.0.1:2379"\nFLANNEL_ETCD_KEY=/old/key\nFLANNEL_OPTIONS="-iface=eth1 -ip-masq"\n' >"$work/store.env"
check_argv "FLANNEL_STORE and the old FLANNEL_ETCD/FLANNEL_ETCD_KEY names" "$work/store.env" \
  -store=sqlite:/var/lib/flannel/store.db -etcd-endpoints=http://10.0.0.1:2379 \
  -etcd-prefix=/old/key -iface=eth1 -ip-masq
grep -q "^flanneld=\${FLANNEL_START_FLANNELD:-/usr/bin/flanneld}$" "$root/usr/bin/flanneld-start" ||
  fail "flanneld-start does not exec /usr/bin/flanneld by default"

# --- dpkg into a scratch root ----------------------------------------------------------------
# --force-script-chrootless: the maintainer scripts run here with DPKG_ROOT set, and do nothing.
scratch="$work/scratch"
mkdir -p "$scratch/var/lib/dpkg/info" "$scratch/var/lib/dpkg/updates"
touch "$scratch/var/lib/dpkg/status"
dpkg_s() { dpkg --root="$scratch" --log=/dev/null --force-script-chrootless --force-depends "$@"; }
if dpkg_s -i "$deb" >"$work/dpkg.log" 2>&1 && [ -x "$scratch/usr/bin/flanneld" ] &&
   [ -f "$scratch/etc/default/flanneld" ]; then
  ok "dpkg --root installs it"
else
  cat "$work/dpkg.log" >&2
  fail "dpkg --root -i failed"
fi
if dpkg_s -r flannel-cpp >>"$work/dpkg.log" 2>&1 && [ ! -e "$scratch/usr/bin/flanneld" ] &&
   [ -f "$scratch/etc/default/flanneld" ]; then
  ok "dpkg --root -r removes it and keeps the conffile"
else
  cat "$work/dpkg.log" >&2
  fail "dpkg --root -r failed, left /usr/bin/flanneld, or removed the conffile"
fi
if dpkg_s -P flannel-cpp >>"$work/dpkg.log" 2>&1 && [ ! -e "$scratch/etc/default/flanneld" ]; then
  ok "dpkg --root -P purges the conffile"
else
  cat "$work/dpkg.log" >&2
  fail "dpkg --root -P failed or left /etc/default/flanneld"
fi

if [ "$fails" -ne 0 ]; then
  echo "deb_test: $fails check(s) failed" >&2
  exit 1
fi
echo "deb_test: all checks passed"
