#include "stores/etcd/curl_lib.h"

#include <dlfcn.h>

#include <stdexcept>
#include <string>
#include <type_traits>

namespace flannel::etcd {
namespace {

constexpr const char* kLibrary = "libcurl.so.4";

CurlLib load() {
  void* h = ::dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* err = ::dlerror();
    throw std::runtime_error(std::string("etcd: cannot load ") + kLibrary + " (" +
                             (err ? err : "unknown error") +
                             "); the etcd stores need libcurl: install libcurl4");
  }
  auto sym = [h](auto& fn, const char* name) {
    void* p = ::dlsym(h, name);
    if (!p) {
      throw std::runtime_error(std::string("etcd: ") + kLibrary + " has no " + name +
                               "; the etcd stores need libcurl 7.68 or later");
    }
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
  };
  CurlLib c{};
  CURLcode (*global_init)(long) = nullptr;
  sym(global_init, "curl_global_init");
  sym(c.easy_init, "curl_easy_init");
  sym(c.easy_setopt, "curl_easy_setopt");
  sym(c.easy_getinfo, "curl_easy_getinfo");
  sym(c.easy_perform, "curl_easy_perform");
  sym(c.easy_reset, "curl_easy_reset");
  sym(c.easy_cleanup, "curl_easy_cleanup");
  sym(c.easy_strerror, "curl_easy_strerror");
  sym(c.multi_init, "curl_multi_init");
  sym(c.multi_add_handle, "curl_multi_add_handle");
  sym(c.multi_remove_handle, "curl_multi_remove_handle");
  sym(c.multi_perform, "curl_multi_perform");
  sym(c.multi_poll, "curl_multi_poll");
  sym(c.multi_wakeup, "curl_multi_wakeup");
  sym(c.multi_info_read, "curl_multi_info_read");
  sym(c.multi_cleanup, "curl_multi_cleanup");
  sym(c.multi_strerror, "curl_multi_strerror");
  sym(c.slist_append, "curl_slist_append");
  sym(c.slist_free_all, "curl_slist_free_all");
  // Not guaranteed thread-safe on every build: done once, here, under the static's guard.
  if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    throw std::runtime_error("etcd: libcurl global initialisation failed");
  }
  return c;  // the library stays loaded for the life of the process
}

}  // namespace

const CurlLib& curl_lib() {
  static const CurlLib lib = load();  // a throw leaves it unset: the next call tries again
  return lib;
}

}  // namespace flannel::etcd
