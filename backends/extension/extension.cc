#include "backends/extension/extension.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "backends/batch_errors.h"
#include "backends/extension/command.h"
#include "backends/process/child_process.h"

namespace flannel {
namespace {

std::string trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n\v\f";
  size_t start = text.find_first_not_of(kSpace);
  if (start == std::string_view::npos) return "";
  return std::string(text.substr(start, text.find_last_not_of(kSpace) - start + 1));
}

// The command's output for the one log line: stdout and stderr trimmed, joined, newlines shown
// as \n, at most 400 characters.
std::string one_line(const std::string& out, const std::string& err) {
  std::string text = trim(out);
  std::string e = trim(err);
  if (!e.empty()) text += (text.empty() ? "" : "\n") + e;
  std::string line;
  for (char c : text) {
    if (c == '\n') line += "\\n";
    else if (c == '\r' || c == '\t') line += ' ';
    else line += c;
    if (line.size() >= 400) {
      line += "...";
      break;
    }
  }
  return line;
}

std::string status_text(const ChildResult& r) {
  if (!r.error.empty()) return "could not be started: " + r.error;
  if (r.timed_out)
    return "timed out after " + std::to_string(r.timeout.count() / 1000) +
           " s (CommandTimeout) and was killed";
  return r.status.str();
}

std::vector<std::string> peer_vars(const Lease& peer) {
  return {"SUBNET=" + (peer.key().has_ipv4() ? peer.subnet.str() : std::string()),
          "PUBLIC_IP=" + peer.attrs.public_ip.str()};
}

}  // namespace

struct ExtensionBackend::Outcome {
  bool ok = false;
  std::string out;  // stdout, trimmed
  std::string why;  // on failure: the command, its status and output
};

ExtensionBackend::Outcome ExtensionBackend::run(const char* field, const std::string& line,
                                                const std::vector<std::string>& vars,
                                                const std::string& stdin_data,
                                                const std::string& who) const {
  Outcome o;
  std::vector<std::string> env = environment_with(vars);
  std::vector<std::string> argv = command_argv(line, env);
  std::string subject = std::string(field) + (who.empty() ? "" : " for " + who);
  if (argv.empty() || argv[0].empty()) {
    o.why = std::string(field) + " `" + line + "`: the program name expanded to nothing";
    note("extension: " + subject + " " + o.why);
    return o;
  }
  ChildSpec spec{.argv = argv,
                 .env = env,
                 .stdin_data = stdin_data + "\n",
                 .timeout = std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.timeout)};
  auto start = std::chrono::steady_clock::now();
  ChildResult r = run_child(spec);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  o.ok = r.ok();
  o.out = trim(r.out);
  std::string output = one_line(r.out, r.err);
  std::string ran = "`" + command_line(argv) + "` " + status_text(r);
  note("extension: " + subject + " " + ran + " after " + std::to_string(ms) +
       " ms; output: " + (output.empty() ? "(none)" : output));
  if (!o.ok) o.why = std::string(field) + " " + ran + (output.empty() ? "" : ": " + output);
  return o;
}

BackendSetup ExtensionBackend::setup(const Config& config, const ExternalInterface& iface) {
  cfg_ = decode_extension_config(config.backend_json);
  for (const auto& w : cfg_.warnings) note(w);
  config_ = config;
  iface_ = iface;
  BackendSetup out;
  out.attrs.public_ip = iface.ext_addr;
  out.attrs.backend_type = "extension";
  out.mtu = iface.mtu;
  if (cfg_.pre_startup.empty()) return out;
  Outcome o = run("PreStartupCommand", cfg_.pre_startup, {}, "", "");
  if (!o.ok) throw BackendError("extension: " + o.why);
  out.attrs.backend_data = encode_extension_data(o.out);
  return out;
}

void ExtensionBackend::lease_acquired(const Lease& ours) {
  if (cfg_.post_startup.empty()) return;
  std::vector<std::string> vars{
      "NETWORK=" + (config_.enable_ipv4 ? config_.network.str() : std::string()),
      "SUBNET=" + (ours.key().has_ipv4() ? ours.subnet.str() : std::string()),
      "IPV6SUBNET=" + (ours.ipv6_subnet ? ours.ipv6_subnet->str() : std::string()),
      "PUBLIC_IP=" + ours.attrs.public_ip.str(),
      "PUBLIC_IPV6=" + (ours.attrs.public_ipv6 ? ours.attrs.public_ipv6->str() : std::string())};
  Outcome o = run("PostStartupCommand", cfg_.post_startup, vars, "", "");
  if (!o.ok) throw BackendError("extension: " + o.why);
}

std::optional<std::string> ExtensionBackend::refuse_peer_data(const Lease& peer) const {
  if (peer.attrs.backend_type != "extension") return std::nullopt;  // skipped by sync/apply
  std::string why;
  if (decode_extension_data(peer.attrs.backend_data, &why)) return std::nullopt;
  return why;
}

bool ExtensionBackend::usable(const Lease& peer) {
  if (peer.attrs.backend_type != "extension") {
    ++skipped_;
    note("extension: skipping peer " + peer.key().str() + ": its BackendType is \"" +
         peer.attrs.backend_type + "\", not \"extension\" (every host must use one backend)");
    return false;
  }
  if (auto why = refuse_peer_data(peer)) {
    note("extension: skipping peer " + peer.key().str() + ": " + *why);
    return false;
  }
  return true;
}

bool ExtensionBackend::add_peer(const Lease& peer, std::string* why) {
  auto known = added_.find(peer.key());
  if (known != added_.end() && known->second.attrs == peer.attrs) return true;  // in place
  if (!cfg_.subnet_add.empty()) {
    std::string unused;
    std::string data = decode_extension_data(peer.attrs.backend_data, &unused).value_or("");
    Outcome o = run("SubnetAddCommand", cfg_.subnet_add, peer_vars(peer), data, peer.key().str());
    if (!o.ok) {
      added_.erase(peer.key());  // so that the retry runs it again
      *why = o.why;
      return false;
    }
  }
  added_[peer.key()] = peer;
  return true;
}

bool ExtensionBackend::remove_peer(const Lease& peer, std::string* why) {
  added_.erase(peer.key());
  if (cfg_.subnet_remove.empty()) return true;
  std::string unused;
  std::string data = decode_extension_data(peer.attrs.backend_data, &unused).value_or("");
  Outcome o =
      run("SubnetRemoveCommand", cfg_.subnet_remove, peer_vars(peer), data, peer.key().str());
  if (!o.ok) *why = o.why;
  return o.ok;
}

void ExtensionBackend::sync(const std::vector<Lease>& peers) {
  BatchErrors errors;
  std::set<LeaseKey> present;
  for (const auto& peer : peers) {
    if (!usable(peer)) continue;
    present.insert(peer.key());
    std::string why;
    if (!add_peer(peer, &why)) errors.add({PeerEvent::Type::kAdded, peer}, why);
  }
  std::vector<Lease> gone;
  for (const auto& [key, lease] : added_)
    if (!present.contains(key)) gone.push_back(lease);
  for (const auto& lease : gone) {
    std::string why;
    if (!remove_peer(lease, &why)) errors.add({PeerEvent::Type::kRemoved, lease}, why);
  }
  errors.throw_if_any(peers.size() + gone.size());
}

void ExtensionBackend::apply(const std::vector<PeerEvent>& batch) {
  BatchErrors errors;
  for (const auto& ev : batch) {
    std::string why;
    if (ev.type == PeerEvent::Type::kAdded) {
      if (usable(ev.lease) && !add_peer(ev.lease, &why)) errors.add(ev, why);
      continue;
    }
    // The lease as last added, else as the daemon last knew it (an add that failed).
    auto known = added_.find(ev.lease.key());
    const Lease& peer = known != added_.end() ? known->second : ev.lease;
    if (known == added_.end() && !usable(peer)) continue;
    if (!remove_peer(Lease(peer), &why)) errors.add(ev, why);
  }
  errors.throw_if_any(batch.size());
}

}  // namespace flannel
