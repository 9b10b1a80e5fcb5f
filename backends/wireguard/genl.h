// The kernel WireGuard device over generic netlink (family "wireguard", version 1, constants
// from <linux/wireguard.h>), with libnl-genl-3: the kernel half of WgDevice (device.h),
// offering exactly what the UAPI client offers wireguard-go. Same request and answer structs
// (UapiSet, UapiDevice), same semantics:
//   UapiSet                      -> WG_CMD_SET_DEVICE, WGDEVICE_A_IFNAME
//     private_key, listen_port   -> WGDEVICE_A_PRIVATE_KEY (32 bytes), WGDEVICE_A_LISTEN_PORT (u16)
//     replace_peers              -> WGDEVICE_A_FLAGS = WGDEVICE_F_REPLACE_PEERS
//     peers[]                    -> WGDEVICE_A_PEERS, one nest per peer:
//       public_key               -> WGPEER_A_PUBLIC_KEY
//       preshared_key            -> WGPEER_A_PRESHARED_KEY (a zero key clears it)
//       remove                   -> WGPEER_A_FLAGS: WGPEER_F_REMOVE_ME
//       replace_allowed_ips      -> WGPEER_A_FLAGS: WGPEER_F_REPLACE_ALLOWEDIPS
//       endpoint "ip:port"       -> WGPEER_A_ENDPOINT (sockaddr_in; sockaddr_in6 for "[ip6]:port")
//       keepalive                -> WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL (u16)
//       allowed_ips              -> WGPEER_A_ALLOWEDIPS, one nest each: FAMILY (u16), IPADDR,
//                                   CIDR_MASK (u8)
//   WG_CMD_GET_DEVICE (dump)     -> UapiDevice: the same attributes back, plus per peer
//                                   LAST_HANDSHAKE_TIME (struct __kernel_timespec), RX_BYTES,
//                                   TX_BYTES.
// Every nest carries NLA_F_NESTED (the kernel validates strictly). A set too large for one message
// is split as wireguard-tools does: device attributes (and REPLACE_PEERS) in the first message,
// the remaining peers in the next ones. A dump may split the peers over several messages, a
// peer's allowed IPs too (the next message repeats its public key): the parser merges them.
//
// Building and parsing are plain functions on libnl messages (unit-tested without a kernel);
// GenlDeviceClient does the socket I/O, one socket per call (thread-safe, as wgctrl).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "backends/wireguard/device.h"

struct nl_msg;
struct nlmsghdr;

namespace flannel {

struct NlMsgFree {
  void operator()(nl_msg* m) const;
};
using NlMsgPtr = std::unique_ptr<nl_msg, NlMsgFree>;

// A 32 KiB message holds ~200 flannel peers (one allowed IP each).
constexpr size_t kWgGenlMaxMessage = 32 * 1024;

// The WG_CMD_SET_DEVICE requests for `set` on device `ifname` (family = the resolved id of
// "wireguard"), each at most `max_size` bytes. Throws UapiError for a value the kernel cannot
// take (an endpoint that is not "IPv4:port" / "[IPv6]:port", a port or keepalive out of range,
// a name longer than 15 bytes, one peer larger than max_size).
std::vector<NlMsgPtr> build_wg_set_messages(int family, const std::string& ifname,
                                            const UapiSet& set,
                                            size_t max_size = kWgGenlMaxMessage);
// The WG_CMD_GET_DEVICE dump request for `ifname`.
NlMsgPtr build_wg_get_message(int family, const std::string& ifname);
// Adds one message of a GET_DEVICE answer to *dev (call for each message, in order). Throws
// UapiError for a malformed message (a key that is not 32 bytes, a bad address length, ...);
// *dev may then hold part of that message (GenlDeviceClient::get() returns nothing then).
void parse_wg_get_reply(nlmsghdr* hdr, UapiDevice* dev);

class GenlDeviceClient final : public WgDevice {
 public:
  explicit GenlDeviceClient(std::string ifname) : ifname_(std::move(ifname)) {}
  void set(const UapiSet& set) const override;
  UapiDevice get() const override;
  std::string describe() const override {
    return "kernel WireGuard device " + ifname_ + " (generic netlink)";
  }

 private:
  std::string ifname_;
};

}  // namespace flannel
