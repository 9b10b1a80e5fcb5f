// The netlink layer (libnl-route-3): one RAII session and read-outs named after the objects an
// operator knows from `ip link`, `ip addr`, `ip route`. Operates in the calling thread's network
// namespace. Errors throw NetlinkError naming the operation and libnl's reason.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ip.h"

struct nl_sock;

namespace flannel {

class NetlinkError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LinkInfo {
  int index = 0;
  std::string name;
  int mtu = 0;
  unsigned flags = 0;  // IFF_*
};

struct Addr4Info {
  int index = 0;  // link index
  IP4 addr;
  int prefix = 0;
  bool operator==(const Addr4Info&) const = default;
};

// One connected NETLINK_ROUTE socket. Non-copyable; closes on destruction.
class NetlinkSession {
 public:
  NetlinkSession();
  ~NetlinkSession();
  NetlinkSession(const NetlinkSession&) = delete;
  NetlinkSession& operator=(const NetlinkSession&) = delete;

  nl_sock* sock() const { return sock_; }

  // `ip link show`: every link, in kernel index order.
  std::vector<LinkInfo> links();
  // `ip -4 addr show`: every IPv4 address, in netlink dump order.
  std::vector<Addr4Info> addrs4();
  // `ip route show default` (main table): the oif of the first IPv4 default route; nullopt when
  // there is none. Throws if that route has no single output interface (multipath).
  std::optional<int> default_route_ifindex();

 private:
  nl_sock* sock_ = nullptr;
};

}  // namespace flannel
