#!/usr/bin/env bash
# make_packages.sh BUILD_DIR OUT_DIR: what the node lab installs on its nodes, built from a built
# tree: the Debian package (cpack -G DEB) as OUT_DIR/flannel-cpp.deb.
set -euo pipefail
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
