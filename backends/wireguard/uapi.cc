#include "backends/wireguard/uapi.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "backends/unique_fd.h"

namespace flannel {
namespace {

constexpr int kTimeoutMs = 5000;

std::string line(const std::string& k, const std::string& v) { return k + "=" + v + "\n"; }

template <typename T>
bool to_number(std::string_view s, T* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

UniqueFd connect_unix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid())
    throw UapiError("cannot create a unix socket: " + std::string(std::strerror(errno)));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sa.sun_path)) throw UapiError("UAPI socket path too long: " + path);
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    throw UapiError("cannot connect to WireGuard UAPI socket " + path + ": " +
                    std::strerror(errno) + " (is wireguard-go running for this device?)");
  }
  return fd;
}

}  // namespace

std::string uapi_socket_path(const std::string& device) {
  return "/var/run/wireguard/" + device + ".sock";
}

std::string render_uapi_set(const UapiSet& set) {
  std::string out = "set=1\n";
  if (set.private_key) out += line("private_key", set.private_key->hex());
  if (set.listen_port) out += line("listen_port", std::to_string(*set.listen_port));
  if (set.replace_peers) out += "replace_peers=true\n";
  for (const auto& p : set.peers) {
    out += line("public_key", p.public_key.hex());
    if (p.remove) {
      out += "remove=true\n";
      continue;
    }
    if (p.preshared_key) out += line("preshared_key", p.preshared_key->hex());
    if (!p.endpoint.empty()) out += line("endpoint", p.endpoint);
    if (p.keepalive) out += line("persistent_keepalive_interval", std::to_string(*p.keepalive));
    if (p.replace_allowed_ips) out += "replace_allowed_ips=true\n";
    for (const auto& net : p.allowed_ips) out += line("allowed_ip", net.str());
  }
  out += "\n";
  return out;
}

void check_uapi_errno(std::string_view answer, const std::string& what) {
  size_t pos = answer.rfind("errno=");
  if (pos == std::string_view::npos || (pos != 0 && answer[pos - 1] != '\n')) {
    throw UapiError(what + ": the device's answer has no errno line: \"" + std::string(answer) +
                    "\"");
  }
  std::string_view v = answer.substr(pos + 6);
  v = v.substr(0, v.find('\n'));
  int err = 0;
  if (!to_number(v, &err))
    throw UapiError(what + ": bad errno line in the answer: errno=" + std::string(v));
  if (err != 0) {
    throw UapiError(what + ": the device answered errno=" + std::to_string(err) + " (" +
                        std::strerror(err) + ")",
                    err);
  }
}

UapiDevice parse_uapi_get(std::string_view answer) {
  check_uapi_errno(answer, "UAPI get");
  UapiDevice dev;
  UapiPeerStatus* peer = nullptr;
  size_t start = 0;
  while (start < answer.size()) {
    size_t end = answer.find('\n', start);
    if (end == std::string_view::npos) end = answer.size();
    std::string_view l = answer.substr(start, end - start);
    start = end + 1;
    if (l.empty()) continue;
    size_t eq = l.find('=');
    if (eq == std::string_view::npos)
      throw UapiError("UAPI get: malformed line \"" + std::string(l) + "\"");
    std::string_view k = l.substr(0, eq), v = l.substr(eq + 1);
    auto bad = [&] { return UapiError("UAPI get: bad value in \"" + std::string(l) + "\""); };
    if (k == "errno") break;
    if (k == "public_key") {
      auto key = WgKey::from_hex(v);
      if (!key) throw bad();
      dev.peers.push_back({});
      peer = &dev.peers.back();
      peer->public_key = *key;
      continue;
    }
    if (!peer) {  // device section
      if (k == "private_key") {
        auto key = WgKey::from_hex(v);
        if (!key) throw bad();
        dev.private_key = *key;
      } else if (k == "listen_port") {
        if (!to_number(v, &dev.listen_port)) throw bad();
      }  // fwmark and future keys: ignored
      continue;
    }
    if (k == "preshared_key") {
      auto key = WgKey::from_hex(v);
      if (!key) throw bad();
      peer->preshared_key = *key;
      peer->has_preshared_key = *key != WgKey{};
    } else if (k == "endpoint") {
      peer->endpoint = std::string(v);
    } else if (k == "allowed_ip") {
      if (v.find(':') != std::string_view::npos) {
        peer->allowed_ips_v6.emplace_back(v);
      } else {
        auto net = IP4Net::try_parse(std::string(v));
        if (!net) throw bad();
        peer->allowed_ips.push_back(*net);
      }
    } else if (k == "persistent_keepalive_interval") {
      if (!to_number(v, &peer->keepalive)) throw bad();
    } else if (k == "last_handshake_time_sec") {
      if (!to_number(v, &peer->last_handshake_sec)) throw bad();
    } else if (k == "last_handshake_time_nsec") {
      if (!to_number(v, &peer->last_handshake_nsec)) throw bad();
    } else if (k == "rx_bytes") {
      if (!to_number(v, &peer->rx_bytes)) throw bad();
    } else if (k == "tx_bytes") {
      if (!to_number(v, &peer->tx_bytes)) throw bad();
    }  // protocol_version and future keys: ignored
  }
  return dev;
}

std::string UapiClient::exchange(const std::string& request) const {
  UniqueFd fd = connect_unix(path_);
  size_t off = 0;
  while (off < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw UapiError("cannot write to " + path_ + ": " + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  std::string answer;
  char buf[4096];
  // The answer ends with an empty line; wireguard-go keeps the connection open after it.
  while (answer.size() < 2 || answer.compare(answer.size() - 2, 2, "\n\n") != 0) {
    pollfd p{fd.get(), POLLIN, 0};
    int r = ::poll(&p, 1, kTimeoutMs);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw UapiError("no complete answer from " + path_ + " within 5 s");
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw UapiError("cannot read from " + path_ + ": " + std::strerror(errno));
    if (n == 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  return answer;
}

void UapiClient::set(const UapiSet& s) const {
  check_uapi_errno(exchange(render_uapi_set(s)), "UAPI set on " + path_);
}

UapiDevice UapiClient::get() const { return parse_uapi_get(exchange(render_uapi_get())); }

bool UapiClient::reachable() const {
  try {
    connect_unix(path_);
    return true;
  } catch (const UapiError&) { return false; }
}

}  // namespace flannel
