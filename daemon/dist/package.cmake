# The Debian package, built by CPack's DEB generator from the install rules (included from the
# top-level CMakeLists.txt, as CPack must be):
#   cmake --build build && (cd build && cpack -G DEB)     -> build/flannel-cpp_<version>-1_<arch>.deb
# Paths are Debian's whatever CMAKE_INSTALL_PREFIX the tree was configured with: cpack installs
# with the prefix /usr, and install_dist.cmake generates the unit and flanneld-start for it.
# tests/package/ builds, lints and inspects the package (ctest -L package).
# Everything installed goes into the package: a new program (e.g. a CNI plugin) needs only its
# install rule, `install(TARGETS <target> RUNTIME DESTINATION lib/cni)` for /usr/lib/cni/, and
# its path added to tests/package/expected_files.txt.
set(FLANNEL_LICENSE "not chosen yet; until the project chooses one, no license is granted"
    CACHE STRING "License named in the package's copyright file")
set(FLANNEL_DEB_MAINTAINER "flannel-cpp maintainers <flannel-cpp@users.noreply.github.com>"
    CACHE STRING "Maintainer field of the Debian package")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME flannel-cpp)
set(CPACK_PACKAGE_VENDOR "the flannel-cpp authors")
set(CPACK_PACKAGE_CONTACT "${FLANNEL_DEB_MAINTAINER}")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "flannel v0.11 compatible overlay network agent")
# The extended description, wrapped for dpkg (lines under 80 columns).
string(JOIN "\n" CPACK_PACKAGE_DESCRIPTION
  "flanneld gives every host of a cluster its own subnet of one overlay"
  "network, records the lease in etcd (v2 API) or a shared SQLite file, and"
  "programs vxlan, host-gw or udp routing so containers on different hosts"
  "reach each other. It is a drop-in for flannel v0.11: the same flags, etcd"
  "keys, subnet.env and mk-docker-opts.sh output."
  "The package installs the flanneld.service unit, the flanneld-start wrapper"
  "reading /etc/default/flanneld (or /etc/sysconfig/flanneld) and a"
  "docker.service drop-in; it does not start the service.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Run, not linked: iptables (masquerade/forward rules); libcurl, loaded by the etcd stores when
# one is used (stores/etcd/curl_lib.h; 7.68 for curl_multi_wakeup); libssl3 (OpenSSL's libcrypto.so.3),
# loaded by the wireguard backend for its keys (backends/wireguard/crypto_lib.h). Debian's flannel ships
# /usr/bin/flanneld.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "iptables, libcurl4 (>= 7.68.0), libssl3")
set(CPACK_DEBIAN_PACKAGE_CONFLICTS "flannel")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(dist "${CMAKE_CURRENT_LIST_DIR}")
set(pkgmeta "${PROJECT_BINARY_DIR}/package-meta")
# /etc/default/flanneld is the only file under /etc, and the operator's: keep it on upgrades.
file(WRITE "${pkgmeta}/conffiles" "/etc/default/flanneld\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${pkgmeta}/conffiles;${dist}/postinst;${dist}/prerm;${dist}/postrm")

# /usr/share/doc/flannel-cpp: copyright, changelog.Debian.gz (gzip -9n, as Debian policy wants),
# the README the unit's Documentation= points at.
configure_file("${dist}/copyright" "${pkgmeta}/copyright" @ONLY)
configure_file("${dist}/changelog.Debian.in" "${pkgmeta}/changelog.Debian" @ONLY)
find_program(GZIP_PROGRAM gzip REQUIRED)
add_custom_command(OUTPUT "${pkgmeta}/changelog.Debian.gz"
                   COMMAND "${GZIP_PROGRAM}" -9nkf "${pkgmeta}/changelog.Debian"
                   DEPENDS "${pkgmeta}/changelog.Debian" VERBATIM)
add_custom_target(package_changelog ALL DEPENDS "${pkgmeta}/changelog.Debian.gz")
install(FILES "${pkgmeta}/copyright" "${pkgmeta}/changelog.Debian.gz" "${PROJECT_SOURCE_DIR}/README.md"
        DESTINATION share/doc/flannel-cpp)

include(CPack)
