// WireGuard keys (Curve25519, 32 bytes) and the private key file, as current flannel (facts §3.3):
// /run/flannel/wgkey (WIREGUARD_KEY_FILE overrides), standard base64 without a newline, created
// once and reused across restarts. The cryptography is OpenSSL's libcrypto (X25519): key
// generation and public-key derivation; this file only moves bytes between encodings.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flannel {

struct WgKey {
  std::array<uint8_t, 32> bytes{};

  // Standard base64 (44 chars, one '='); a trailing "\n" or "\r\n" is ignored as Go's decoder does.
  static std::optional<WgKey> from_base64(std::string_view text);
  // Lowercase hex (64 chars), the UAPI encoding.
  static std::optional<WgKey> from_hex(std::string_view text);
  std::string base64() const;
  std::string hex() const;

  // A new private key (X25519, clamped as `wg genkey` does). Throws BackendError.
  static WgKey generate_private();
  // The public key of this private key (as `wg pubkey`). Throws BackendError.
  WgKey public_key() const;

  bool operator==(const WgKey&) const = default;
  auto operator<=>(const WgKey&) const = default;
};

// $WIREGUARD_KEY_FILE, else /run/flannel/wgkey.
std::string wg_key_file_path();

// Reads the private key from `path`, or creates it (parent directory 0755, file 0600, written
// before anyone else can open it) when it does not exist; *created (may be nullptr) says which,
// and is false when this throws. Throws BackendError naming the file for: group/other
// permissions (with the chmod that fixes it), a non-regular file, a corrupt key ("could not
// parse private key from file ..."), or a failed read, write or rename.
WgKey load_or_create_private_key(const std::string& path, bool* created = nullptr);

}  // namespace flannel
