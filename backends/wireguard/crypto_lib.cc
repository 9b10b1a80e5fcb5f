#include "backends/wireguard/crypto_lib.h"

#include <dlfcn.h>

#include <string>
#include <type_traits>

#include "backends/backend.h"

namespace flannel {
namespace {

constexpr const char* kLibrary = "libcrypto.so.3";

CryptoLib load() {
  void* h = ::dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* err = ::dlerror();
    throw BackendError(std::string("wireguard: cannot load ") + kLibrary + " (" +
                       (err ? err : "unknown error") +
                       "); the wireguard backend's keys need OpenSSL 3: install libssl3");
  }
  auto sym = [h](auto& fn, const char* name) {
    void* p = ::dlsym(h, name);
    if (!p) {
      throw BackendError(std::string("wireguard: ") + kLibrary + " has no " + name +
                         "; the wireguard backend needs OpenSSL 3");
    }
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
  };
  CryptoLib c{};
  sym(c.rand_bytes, "RAND_bytes");
  sym(c.new_raw_private_key, "EVP_PKEY_new_raw_private_key");
  sym(c.get_raw_public_key, "EVP_PKEY_get_raw_public_key");
  sym(c.pkey_free, "EVP_PKEY_free");
  return c;  // the library stays loaded for the life of the process
}

}  // namespace

const CryptoLib& crypto_lib() {
  static const CryptoLib lib = load();  // a throw leaves it unset: the next call tries again
  return lib;
}

}  // namespace flannel
