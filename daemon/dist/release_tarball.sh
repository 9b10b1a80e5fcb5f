#!/usr/bin/env bash
# release_tarball.sh BUILD_DIR SOURCE_DIR OUT.tar.gz: the release tarball laid out as flannel's
# (flannel-v0.11.0-linux-amd64.tar.gz): flanneld and mk-docker-opts.sh (from BUILD_DIR/bin) and
# README.md (from SOURCE_DIR) at the top level, nothing else, so `tar xf ... -C
# /opt/flannel-v0.11.0` installs as seed 002 does. The binaries are stripped (as in flannel's
# release); owners, times and order are fixed so the same tree gives the same tarball. Run by
# the release_tarball target (daemon/dist/CMakeLists.txt) and by tests/nodes/make_packages.sh.
set -euo pipefail
(($# == 3)) || { echo "usage: $0 BUILD_DIR SOURCE_DIR OUT.tar.gz" >&2; exit 2; }
bin=$1/bin readme=$2/README.md out=$3
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for f in flanneld mk-docker-opts.sh; do
  [ -x "$bin/$f" ] || { echo "release_tarball: $bin/$f is missing (build it first)" >&2; exit 1; }
  strip --strip-unneeded -o "$stage/$f" "$bin/$f"
done
install -m 0644 "$readme" "$stage/README.md"
mkdir -p "$(dirname "$out")"
tar -C "$stage" --owner=0 --group=0 --numeric-owner --mtime=@0 -czf "$out.tmp" \
  flanneld mk-docker-opts.sh README.md
mv "$out.tmp" "$out"
echo "release_tarball: $out"
