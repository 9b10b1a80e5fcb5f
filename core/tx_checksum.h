// The VXLAN TX checksum decision (-vxlan-tx-checksum): whether flanneld turns the ethtool feature
// tx-checksum-ip-generic of its vxlan devices off, on, or leaves the kernel's default.
//
// Kernels before 5.7 can send VXLAN packets with a wrong outer UDP checksum when the host is
// behind NAT (MASQUERADE --random-fully rewrites the source port after the checksum was
// offloaded); flannel's troubleshooting guide tells users to run
// `ethtool -K flannel.1 tx-checksum-ip-generic off` and to add a udev rule for it. "auto" does
// that on those kernels and leaves newer ones alone (the cutoff Calico uses, facts-2 §5).
//
// Pure functions of their arguments: no I/O, safe from any thread.
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace flannel {

// The ethtool feature the decision is about (NETIF_F_HW_CSUM: the only TX checksum feature a
// vxlan device has).
inline constexpr std::string_view kTxChecksumFeature = "tx-checksum-ip-generic";

// What -vxlan-tx-checksum asks for.
enum class TxChecksum { kAuto, kOn, kOff };

// "auto", "on" or "off" (exactly, lowercase); nullopt for anything else.
std::optional<TxChecksum> parse_tx_checksum(std::string_view text);
// The flag's spelling of `mode`.
std::string_view to_string(TxChecksum mode);
// Why a value was refused, for the flag's error message.
inline constexpr std::string_view kTxChecksumValues =
    "must be \"auto\" (off on kernels before 5.7, else left as the kernel sets it), \"on\" or "
    "\"off\"";

// A kernel release's leading numbers ("6.18.44-fc-v1272" -> 6.18.44).
struct KernelVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  auto operator<=>(const KernelVersion&) const = default;
  std::string str() const;  // "6.18.44"
};

// The first kernel whose VXLAN TX checksums survive NAT.
inline constexpr KernelVersion kTxChecksumFixedIn{5, 7, 0};

// Parses uname(2)'s release: "MAJOR.MINOR[.PATCH]" followed by anything that does not continue
// the number ("3.10.0-1160.el7.x86_64", "5.6", "6.1.0-13-amd64", "4.19.0+"). nullopt when it
// does not start that way ("", "linux", "5", "5.x").
std::optional<KernelVersion> parse_kernel_release(std::string_view release);

// The value to give tx-checksum-ip-generic: kOn -> true, kOff -> false; kAuto -> false before
// kTxChecksumFixedIn, nullopt (leave the device as the kernel made it) from it on or when the
// kernel's version is unknown.
std::optional<bool> tx_checksum_setting(TxChecksum mode, std::optional<KernelVersion> kernel);

}  // namespace flannel
