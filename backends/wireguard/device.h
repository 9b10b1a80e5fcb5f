// WgDevice: how the wireguard backend talks to its device, whichever WireGuard runs it. Two
// implementations with the same semantics (those of the cross-platform UAPI, whose request and
// answer structs they share):
//   - UapiDeviceClient (below): wireguard-go's UAPI unix socket (userspace);
//   - GenlDeviceClient (genl.h): the kernel's "wireguard" generic netlink family.
// Both are thread-safe (every call opens its own socket, as wgctrl does), so the metrics thread
// may read the device while the agent configures it. Errors: UapiError naming the device, with
// the device's errno in error_number() when it answered one.
#pragma once

#include <string>

#include "backends/wireguard/uapi.h"

namespace flannel {

class WgDevice {
 public:
  virtual ~WgDevice() = default;
  // Applies `set` (private key, listen port, replace_peers, per-peer changes). Throws UapiError.
  // Not atomic: the kernel client sends a large set in several messages, and a failure leaves
  // the earlier ones applied.
  virtual void set(const UapiSet& set) const = 0;
  // The device's configuration and per-peer status. Throws UapiError.
  virtual UapiDevice get() const = 0;
  // For messages: "wireguard-go UAPI socket /var/run/wireguard/flannel-wg.sock", "kernel ...".
  virtual std::string describe() const = 0;
};

class UapiDeviceClient final : public WgDevice {
 public:
  explicit UapiDeviceClient(const std::string& device) : client_(uapi_socket_path(device)) {}
  void set(const UapiSet& s) const override { client_.set(s); }
  UapiDevice get() const override { return client_.get(); }
  std::string describe() const override { return "wireguard-go UAPI socket " + client_.path(); }

 private:
  UapiClient client_;
};

}  // namespace flannel
