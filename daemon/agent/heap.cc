#include "daemon/agent/heap.h"

#include <netlink/msg.h>
#include <unistd.h>

#include <fstream>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace flannel {
namespace {

// RssAnon of this process in kB (-1 if unknown).
long rss_anon_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::stol(line.substr(8));
  return -1;
}

}  // namespace

void shrink_netlink_messages() { nlmsg_set_default_size(kNetlinkMessageSize); }

long release_free_heap() {
#if defined(__GLIBC__)
  long before = rss_anon_kb();
  malloc_trim(0);
  long after = rss_anon_kb();
  if (before < 0 || after < 0 || after >= before) return 0;
  return (before - after) * 1024;
#else
  return 0;
#endif
}

}  // namespace flannel
