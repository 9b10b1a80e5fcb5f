// libcurl, loaded when the first etcd store is opened rather than linked: an agent on the SQLite
// store never maps libcurl and the chain Debian builds it with (OpenSSL's libssl, GnuTLS via
// librtmp, LDAP, SSH2, Kerberos, nghttp2, ...), about 4 MB of RSS and 40 shared objects.
//
// curl_lib() dlopens libcurl.so.4 once (thread-safe) and returns the functions
// stores/etcd/http_client.cc calls, each named after its curl_ function without the prefix
// (easy_setopt = curl_easy_setopt), with curl_global_init already done. The headers still come from
// libcurl's development package at build time; the Debian package depends on libcurl4 explicitly
// (dpkg-shlibdeps cannot see it).
#pragma once

#include <curl/curl.h>

namespace flannel::etcd {

struct CurlLib {
  CURL* (*easy_init)();
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  CURLcode (*easy_perform)(CURL*);
  void (*easy_reset)(CURL*);
  void (*easy_cleanup)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  CURLM* (*multi_init)();
  CURLMcode (*multi_add_handle)(CURLM*, CURL*);
  CURLMcode (*multi_remove_handle)(CURLM*, CURL*);
  CURLMcode (*multi_perform)(CURLM*, int*);
  CURLMcode (*multi_poll)(CURLM*, struct curl_waitfd[], unsigned int, int, int*);
  CURLMcode (*multi_wakeup)(CURLM*);
  CURLMsg* (*multi_info_read)(CURLM*, int*);
  CURLMcode (*multi_cleanup)(CURLM*);
  const char* (*multi_strerror)(CURLMcode);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
};

// Loads libcurl on the first call. Throws std::runtime_error naming the library, what is missing
// and the package to install when it cannot be loaded or initialised (the next call tries
// again). The returned table lives until the process exits (libcurl is never unloaded).
const CurlLib& curl_lib();

}  // namespace flannel::etcd
