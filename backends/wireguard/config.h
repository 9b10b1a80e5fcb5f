// wireguard backend config and lease codec, as current flannel (facts §3.1, §3.4).
//
// Backend object keys (case-insensitive, the last match wins, null keeps the default):
//   ListenPort (51820), ListenPortV6 (51821), MTU (0 = the external interface's),
//   PSK ("" = none; base64 32 bytes), PersistentKeepaliveInterval (integer seconds, 0 = off),
//   Mode ("separate" | "auto" | "ipv4" | "ipv6", default "separate"; the address family layout).
// Ours, beyond current flannel (which ignores unknown keys, so mixed meshes are fine):
//   Implementation ("auto" | "kernel" | "userspace", default "auto"): which WireGuard to use.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace flannel {

enum class WgImplementation { kAuto, kKernel, kUserspace };
std::string to_string(WgImplementation impl);

// Which WireGuard runs the device, for the configured Implementation: "userspace" -> wireguard-go
// (the probe is not called); "kernel" -> kernel WireGuard, or BackendError naming the fix when
// kernel_has_wireguard() says no; "auto" -> kernel when kernel_has_wireguard(), else wireguard-go.
// Returns kKernel or kUserspace and sets *why to the log line that says which and why.
WgImplementation choose_wg_implementation(WgImplementation configured,
                                          const std::function<bool()>& kernel_has_wireguard,
                                          std::string* why);

struct WgConfig {
  static constexpr int kDefaultListenPort = 51820;
  static constexpr int kDefaultListenPortV6 = 51821;
  int listen_port = kDefaultListenPort;
  int listen_port_v6 = kDefaultListenPortV6;
  int mtu = 0;                    // 0 = the external interface MTU
  std::string psk;                // base64 as configured, "" = none (validated)
  int keepalive_seconds = 0;      // 0 = disabled
  std::string mode = "separate";  // exact lowercase, as flannel
  WgImplementation implementation = WgImplementation::kAuto;
  bool operator==(const WgConfig&) const = default;
};

// Decodes the Backend object (compact raw JSON, "" = absent). Throws BackendError
// "error decoding backend config: ..." (type errors, out-of-range values), "could not parse psk:
// ..." or "no valid Mode configured: ..." as flannel, each naming the bad value.
WgConfig decode_wireguard_config(const std::string& backend_json);

// Lease BackendData: {"PublicKey":"<base64>","Port":51820}, byte-exact as flannel's json.Marshal.
struct WgBackendData {
  std::string public_key;  // base64, 44 chars
  int port = 0;            // 0 = absent (older flannel): use our own listen port
  bool operator==(const WgBackendData&) const = default;
};
std::string encode_wg_backend_data(const WgBackendData& d);
// nullopt (with *why set) when the JSON is not an object or PublicKey is missing / not a valid
// 32-byte base64 key or Port is not 0..65535.
std::optional<WgBackendData> decode_wg_backend_data(std::string_view json, std::string* why);

}  // namespace flannel
