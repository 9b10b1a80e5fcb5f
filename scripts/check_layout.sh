#!/usr/bin/env bash
# The layout check (run by ctest as `layout_check`, so by the test command): every project
# include in core/, stores/, backends/ and daemon/ stays inside what its folder may use.
#   - each folder may include headers only from the folders listed for it below (DESIGN.md's
#     layers: core <- stores, backends <- daemon; stores and backends never include each other;
#     a backend never includes another backend; flannelctl and mk-docker-opts never the backends)
#   - includes are written from the repository root ("stores/etcd/v2_store.h"), never relative,
#     and name a file that exists
#   - core/ uses only the C++ standard library and nlohmann/json: no POSIX or Linux header
#   - every source folder is one the table knows (a new folder needs a line here and in DESIGN.md)
# `check_layout.sh --edges` prints the folder -> folder include counts instead.
set -euo pipefail
cd "$(dirname "$0")/.."

backend_folders="backends/alloc backends/hostgw backends/vxlan backends/udp backends/wireguard backends/extension"
stores_all="stores stores/etcd stores/sqlite"
backends_all="backends backends/netlink backends/rules $backend_folders"

declare -A allowed=(
  [core]="core"
  [stores]="core $stores_all"
  [stores/etcd]="core stores stores/etcd"
  [stores/sqlite]="core stores stores/sqlite"
  [backends]="core $backends_all"
  [backends/netlink]="core backends/netlink"
  [backends/process]="backends/process"
  [backends/rules]="core backends backends/rules backends/process"
  [daemon/common]="core $stores_all daemon/common"
  [daemon/agent]="core $stores_all $backends_all daemon/common daemon/agent"
  [daemon/flanneld]="core $stores_all $backends_all daemon/common daemon/agent daemon/flanneld"
  [daemon/flannelctl]="core $stores_all daemon/common daemon/flannelctl"
  [daemon/mk_docker_opts]="core daemon/common daemon/mk_docker_opts"
  [daemon/cni]="core backends/process daemon/cni"
)
for b in $backend_folders; do
  allowed[$b]="core backends backends/netlink $b"
done
# The child-process runner: for iptables (rules), wireguard-go, the extension backend's commands
# and the CNI delegate only.
allowed[backends/wireguard]+=" backends/process"
allowed[backends/extension]+=" backends/process"

sources() { find core stores backends daemon -type f \( -name '*.h' -o -name '*.cc' \) | sort; }

# Prints "file<TAB>included path" for each quoted include of the project's sources.
quoted_includes() {
  sources | while read -r f; do
    sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+"([^"]+)".*/\1/p' "$f" |
      while read -r inc; do printf '%s\t%s\n' "$f" "$inc"; done
  done
}

if [[ "${1:-}" == "--edges" ]]; then
  quoted_includes | while IFS=$'\t' read -r f inc; do
    echo "${f%/*} -> ${inc%/*}"
  done | sort | uniq -c
  exit 0
fi

errors=0
fail() { echo "layout: $*" >&2; errors=$((errors + 1)); }

for d in $(sources | xargs -n1 dirname | sort -u); do
  [[ -n "${allowed[$d]+set}" ]] || fail "$d/ is not a folder of the layout (add it to scripts/check_layout.sh and DESIGN.md)"
done

while IFS=$'\t' read -r f inc; do
  from=${f%/*}
  to=${inc%/*}
  if [[ "$inc" == .* || "$inc" != */* ]]; then
    fail "$f: #include \"$inc\" is not a path from the repository root"
  elif [[ ! -f "$inc" ]]; then
    fail "$f: #include \"$inc\" names no file of the repository"
  elif [[ " ${allowed[$from]:-} " != *" $to "* ]]; then
    fail "$f: #include \"$inc\": $from/ may include only from: ${allowed[$from]:-nothing}"
  fi
done < <(quoted_includes)

# core/: the standard library and nlohmann/json only (no syscalls, no I/O libraries).
while IFS=: read -r f line text; do
  fail "$f:$line: $text: core/ uses only the C++ standard library and nlohmann/json"
done < <(find core -type f \( -name '*.h' -o -name '*.cc' \) -print0 | xargs -0 grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<' |
         grep -vE '<[a-z_]+>|<nlohmann/json.hpp>' || true)

if ((errors > 0)); then
  echo "layout: $errors problem(s); the allowed folders are in scripts/check_layout.sh" >&2
  exit 1
fi
echo "layout: $(sources | wc -l) files, every include inside its folder's allowed set"
