#include "backends/wireguard/key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "backends/backend.h"
#include "backends/unique_fd.h"
#include "backends/wireguard/crypto_lib.h"

namespace flannel {
namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
  const char* p = std::strchr(kB64, c);
  return (c != '\0' && p) ? static_cast<int>(p - kB64) : -1;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { crypto_lib().pkey_free(k); }
};

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

std::optional<WgKey> WgKey::from_base64(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (text.size() != 44 || text[43] != '=') return std::nullopt;
  WgKey k;
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (size_t i = 0; i < 43; ++i) {
    int v = b64_value(text[i]);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n < 32) k.bytes[n] = static_cast<uint8_t>(acc >> bits);
      ++n;
      acc &= (1u << bits) - 1;
    }
  }
  if (n != 32 || acc != 0) return std::nullopt;  // 2 leftover bits must be zero (strict, as Go)
  return k;
}

std::optional<WgKey> WgKey::from_hex(std::string_view text) {
  if (text.size() != 64) return std::nullopt;
  WgKey k;
  for (size_t i = 0; i < 32; ++i) {
    int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    k.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return k;
}

std::string WgKey::base64() const {
  std::string out;
  for (size_t i = 0; i < 32; i += 3) {
    uint32_t v = static_cast<uint32_t>(bytes[i]) << 16;
    if (i + 1 < 32) v |= static_cast<uint32_t>(bytes[i + 1]) << 8;
    if (i + 2 < 32) v |= bytes[i + 2];
    out += kB64[v >> 18 & 63];
    out += kB64[v >> 12 & 63];
    out += i + 1 < 32 ? kB64[v >> 6 & 63] : '=';
    out += i + 2 < 32 ? kB64[v & 63] : '=';
  }
  return out;
}

std::string WgKey::hex() const {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

WgKey WgKey::generate_private() {
  WgKey k;
  if (crypto_lib().rand_bytes(k.bytes.data(), static_cast<int>(k.bytes.size())) != 1) {
    throw BackendError("wireguard: cannot generate a private key: OpenSSL RAND_bytes failed");
  }
  // The Curve25519 clamping `wg genkey` (and wgtypes.GeneratePrivateKey) apply.
  k.bytes[0] &= 248;
  k.bytes[31] &= 127;
  k.bytes[31] |= 64;
  return k;
}

WgKey WgKey::public_key() const {
  const CryptoLib& crypto = crypto_lib();
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(
      crypto.new_raw_private_key(EVP_PKEY_X25519, nullptr, bytes.data(), bytes.size()));
  WgKey pub;
  size_t len = pub.bytes.size();
  if (!pkey || crypto.get_raw_public_key(pkey.get(), pub.bytes.data(), &len) != 1 || len != 32) {
    throw BackendError("wireguard: cannot derive the public key (OpenSSL X25519 failed)");
  }
  return pub;
}

std::string wg_key_file_path() {
  const char* env = std::getenv("WIREGUARD_KEY_FILE");
  return env && *env ? env : "/run/flannel/wgkey";
}

namespace {

// Checks what an open key file is: a regular file, owned by root or by us, not readable or
// writable by group or others. Throws BackendError naming the file and the fix.
void check_key_file(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    throw BackendError(sys_error("cannot stat wireguard key file " + path));
  if (!S_ISREG(st.st_mode)) {
    throw BackendError("wireguard key file " + path + " is not a regular file");
  }
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    throw BackendError("wireguard key file " + path + " is owned by uid " +
                       std::to_string(st.st_uid) + ": a private key must belong to root or to " +
                       "the agent's user (fix: chown root " + path + ", or remove it)");
  }
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw BackendError("wireguard key file " + path + " has mode " + mode +
                       ": a private key must not be accessible to group or others (fix: chmod "
                       "600 " +
                       path + ")");
  }
}

WgKey read_key_file(int fd, const std::string& path) {
  check_key_file(fd, path);
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  if (n < 0) throw BackendError(sys_error("cannot read wireguard key file " + path));
  auto key = WgKey::from_base64(std::string_view(buf, static_cast<size_t>(n)));
  if (!key) {
    throw BackendError("could not parse private key from file " + path +
                       ": expected a standard base64 32-byte key (44 characters, as `wg genkey` "
                       "writes), got " +
                       std::to_string(n) + " bytes; remove the file to get a new key");
  }
  return *key;
}

}  // namespace

WgKey load_or_create_private_key(const std::string& path, bool* created) {
  if (created) *created = false;
  // O_NOFOLLOW: a symbolic link planted at the path is refused, not followed to someone's file.
  // O_NONBLOCK: a FIFO planted there does not hang the open (check_key_file refuses it).
  UniqueFd existing(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (existing.valid()) return read_key_file(existing.get(), path);
  if (errno == ELOOP) {
    throw BackendError("wireguard key file " + path +
                       " is a symbolic link; refusing to follow it (remove it, and the agent "
                       "writes a new key there)");
  }
  if (errno != ENOENT) throw BackendError(sys_error("cannot open wireguard key file " + path));

  std::error_code ec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::filesystem::create_directories(parent, ec);
    if (ec)
      throw BackendError("cannot create directory " + parent.string() +
                         " for the wireguard key: " + ec.message());
  }
  WgKey key = WgKey::generate_private();
  std::string text = key.base64();  // no newline, as flannel
  std::string tmp = path + ".tmp";
  {
    ::unlink(tmp.c_str());
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) throw BackendError(sys_error("cannot create wireguard key file " + tmp));
    if (::fchmod(fd.get(), 0600) != 0 ||
        ::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
        ::fsync(fd.get()) != 0) {
      int saved = errno;
      ::unlink(tmp.c_str());
      errno = saved;
      throw BackendError(sys_error("cannot write wireguard key file " + tmp));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    throw BackendError(sys_error("cannot rename " + tmp + " to " + path));
  }
  if (created) *created = true;
  return key;
}

}  // namespace flannel
