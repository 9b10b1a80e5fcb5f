// OpenSSL's libcrypto, loaded the first time the wireguard backend needs a key rather than linked:
// an agent on any other backend (and on the SQLite store, which loads no libcurl either) maps no
// OpenSSL at all, about 1 MB of RSS. The same pattern as stores/etcd/curl_lib.h.
//
// crypto_lib() dlopens libcrypto.so.3 once (thread-safe) and returns the four functions
// backends/wireguard/key.cc calls. The headers come from libssl-dev at build time; the Debian
// package depends on libssl3 explicitly (dpkg-shlibdeps cannot see a dlopen).
#pragma once

#include <openssl/evp.h>

namespace flannel {

struct CryptoLib {
  int (*rand_bytes)(unsigned char*, int);  // RAND_bytes
  EVP_PKEY* (*new_raw_private_key)(int, ENGINE*, const unsigned char*, size_t);
  int (*get_raw_public_key)(const EVP_PKEY*, unsigned char*, size_t*);
  void (*pkey_free)(EVP_PKEY*);
};

// Loads libcrypto on the first call. Throws BackendError naming the library, what is missing and
// the package to install when it cannot be loaded.
const CryptoLib& crypto_lib();

}  // namespace flannel
