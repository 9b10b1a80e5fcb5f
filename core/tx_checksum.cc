#include "core/tx_checksum.h"

#include <charconv>

namespace flannel {
namespace {

// Reads a decimal number at the front of `s` (at most 5 digits) and drops it; nullopt if none.
std::optional<int> take_number(std::string_view* s) {
  int value = 0;
  auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), value);
  const size_t used = static_cast<size_t>(end - s->data());
  if (ec != std::errc() || used == 0 || used > 5 || (*s)[0] == '-' || (*s)[0] == '+')
    return std::nullopt;
  s->remove_prefix(used);
  return value;
}

bool take_dot(std::string_view* s) {
  if (s->empty() || s->front() != '.') return false;
  s->remove_prefix(1);
  return true;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::optional<TxChecksum> parse_tx_checksum(std::string_view text) {
  if (text == "auto") return TxChecksum::kAuto;
  if (text == "on") return TxChecksum::kOn;
  if (text == "off") return TxChecksum::kOff;
  return std::nullopt;
}

std::string_view to_string(TxChecksum mode) {
  switch (mode) {
    case TxChecksum::kAuto: return "auto";
    case TxChecksum::kOn: return "on";
    case TxChecksum::kOff: return "off";
  }
  return "auto";
}

std::string KernelVersion::str() const {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

std::optional<KernelVersion> parse_kernel_release(std::string_view release) {
  KernelVersion v;
  auto major = take_number(&release);
  if (!major || !take_dot(&release)) return std::nullopt;
  auto minor = take_number(&release);
  if (!minor) return std::nullopt;
  v.major = *major;
  v.minor = *minor;
  if (!release.empty() && release.front() == '.' && release.size() > 1 && is_digit(release[1])) {
    release.remove_prefix(1);
    auto patch = take_number(&release);
    if (!patch) return std::nullopt;
    v.patch = *patch;
  }
  return v;
}

std::optional<bool> tx_checksum_setting(TxChecksum mode, std::optional<KernelVersion> kernel) {
  switch (mode) {
    case TxChecksum::kOn: return true;
    case TxChecksum::kOff: return false;
    case TxChecksum::kAuto: break;
  }
  if (kernel && *kernel < kTxChecksumFixedIn) return false;
  return std::nullopt;
}

}  // namespace flannel
