#!/usr/bin/env bash
# make_packages.sh BUILD_DIR OUT_DIR: what the node lab installs on its nodes, built from a built
# tree: the Debian package (cpack -G DEB) as OUT_DIR/flannel-cpp.deb, and the release tarball
# laid out as flannel's (daemon/dist/release_tarball.sh) as OUT_DIR/flannel-release.tar.gz.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$1 out=$2
rm -rf "$out"
mkdir -p "$out"
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$out/cpack" >"$out/cpack.log" 2>&1 || {
  cat "$out/cpack.log" >&2
  echo "make_packages: cpack could not build the .deb" >&2
  exit 1
}
mv "$out"/cpack/*.deb "$out/flannel-cpp.deb"
rm -rf "$out/cpack"
echo "make_packages: $out/flannel-cpp.deb"
bash "$repo/daemon/dist/release_tarball.sh" "$build" "$repo" \
  "$out/flannel-release.tar.gz" >/dev/null
echo "make_packages: $out/flannel-release.tar.gz"
