// EtcdOptions: how to reach an etcd cluster (the -etcd-* flags), for the v2 and v3 stores.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace flannel {

struct EtcdOptions {
  // Each entry a URL with scheme, e.g. "https://10.0.0.1:2379". Tried in order, with failover:
  // the first endpoint that answers is pinned until it fails.
  std::vector<std::string> endpoints{"http://127.0.0.1:4001", "http://127.0.0.1:2379"};
  std::string prefix = "/coreos.com/network";
  std::string keyfile, certfile, cafile;  // TLS client key/cert and CA bundle ("" = unset)
  // v2: HTTP basic auth; v3: a token from /v3/auth/authenticate ("" = none)
  std::string username, password;
  std::chrono::milliseconds dial_timeout{1000};      // TCP connect per endpoint
  std::chrono::milliseconds request_timeout{10000};  // whole non-watch request
  // The largest answer read from etcd (-etcd-max-response-mb); a larger one fails the request
  // with an error naming the bound. 64 MiB holds a list of 100,000 leases with room to spare
  // (about 10 MB through v2, 25 MB through the v3 gateway's base64).
  size_t max_response_bytes = size_t{64} << 20;
};

}  // namespace flannel
