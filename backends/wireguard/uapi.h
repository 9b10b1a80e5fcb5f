// The WireGuard cross-platform UAPI (https://www.wireguard.com/xplatform/): the text protocol
// wireguard-go speaks on /var/run/wireguard/<device>.sock. A request is "set=1\n" or "get=1\n",
// key=value lines and an empty line; the answer ends with "errno=N\n\n" (0 = success).
// Rendering and parsing are pure functions (unit-tested); UapiClient does the socket I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "backends/wireguard/key.h"
#include "core/ip.h"

namespace flannel {

class UapiError : public std::runtime_error {
 public:
  UapiError(const std::string& what, int err = 0) : std::runtime_error(what), errno_(err) {}
  int error_number() const { return errno_; }  // the device's errno=N, 0 for I/O or parse errors

 private:
  int errno_ = 0;
};

struct UapiPeerSet {
  WgKey public_key;
  bool remove = false;                 // remove=true: nothing else is sent for this peer
  std::optional<WgKey> preshared_key;  // nullopt = leave as is; a zero key clears it
  std::string endpoint;                // "1.2.3.4:51820", "" = leave as is
  std::optional<int> keepalive;        // seconds, 0 = off; nullopt = leave as is
  bool replace_allowed_ips = false;
  std::vector<IP4Net> allowed_ips;
};

struct UapiSet {
  std::optional<WgKey> private_key;
  std::optional<int> listen_port;
  bool replace_peers = false;
  std::vector<UapiPeerSet> peers;
};

struct UapiPeerStatus {
  WgKey public_key;
  bool has_preshared_key = false;
  WgKey preshared_key;
  std::string endpoint;             // "" = none yet
  std::vector<IP4Net> allowed_ips;  // IPv4 only; IPv6 entries are kept in allowed_ips_v6 text
  std::vector<std::string> allowed_ips_v6;
  int keepalive = 0;
  int64_t last_handshake_sec = 0;  // Unix time; 0 = never
  int64_t last_handshake_nsec = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_bytes = 0;
};

struct UapiDevice {
  std::optional<WgKey> private_key;
  int listen_port = 0;
  std::vector<UapiPeerStatus> peers;
};

// "set=1\n...\n\n" with keys in hex, in the order the protocol requires (device keys, then each
// peer's public_key followed by its settings).
std::string render_uapi_set(const UapiSet& set);
inline std::string render_uapi_get() { return "get=1\n\n"; }

// Parses the errno line of an answer; throws UapiError (errno in error_number()) when it is not 0,
// or when there is no errno line.
void check_uapi_errno(std::string_view answer, const std::string& what);
// Parses a get=1 answer (key=value lines, then errno=0). Throws UapiError.
UapiDevice parse_uapi_get(std::string_view answer);

// One request per connection, as wg(8) does; keeps no socket open, so a const UapiClient may be
// used from several threads at once.
class UapiClient {
 public:
  explicit UapiClient(std::string socket_path) : path_(std::move(socket_path)) {}
  const std::string& path() const { return path_; }
  // Throws UapiError naming the socket.
  void set(const UapiSet& set) const;
  UapiDevice get() const;
  // True if the socket accepts a connection now.
  bool reachable() const;
  // Sends `request`, returns the whole answer (through the empty line). Throws UapiError.
  std::string exchange(const std::string& request) const;

 private:
  std::string path_;
};

// /var/run/wireguard/<device>.sock
std::string uapi_socket_path(const std::string& device);

}  // namespace flannel
