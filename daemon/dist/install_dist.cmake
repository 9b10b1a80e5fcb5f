# Run by `cmake --install` and cpack (install(SCRIPT) in CMakeLists.txt): generates the unit and
# flanneld-start for this install's CMAKE_INSTALL_PREFIX and installs them, with
# /etc/default/flanneld. file(INSTALL) honours DESTDIR, as every install rule does.
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(SYSCONFDIR "/etc")
else()
  set(SYSCONFDIR "${prefix}/etc")
endif()
set(BINDIR "${prefix}/bin")
set(LIBEXECDIR "${prefix}/libexec")
set(DOCDIR "${prefix}/share/doc/flannel-cpp")

set(gen "${FLANNEL_DIST_BINARY_DIR}/generated")
configure_file("${FLANNEL_DIST_SOURCE_DIR}/flanneld.service.in" "${gen}/flanneld.service" @ONLY)
configure_file("${FLANNEL_DIST_SOURCE_DIR}/flanneld-start.in" "${gen}/flanneld-start" @ONLY)

file(INSTALL DESTINATION "${prefix}/lib/systemd/system" TYPE FILE
     FILES "${gen}/flanneld.service")
file(INSTALL DESTINATION "${BINDIR}" TYPE PROGRAM FILES "${gen}/flanneld-start")
file(INSTALL DESTINATION "${SYSCONFDIR}/default" TYPE FILE
     FILES "${FLANNEL_DIST_SOURCE_DIR}/flanneld.default" RENAME flanneld)
