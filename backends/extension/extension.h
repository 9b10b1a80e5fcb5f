// extension: current flannel's backend of operator commands (pkg/backend/extension, facts-2 §3).
// flanneld programs nothing itself: it runs the configured commands (config.h) at four moments,
// each without a shell (command.h), its environment flanneld's own plus:
//
//   PreStartupCommand    setup(), before the lease     no extra variables   stdin "\n"
//   PostStartupCommand   lease_acquired()              NETWORK SUBNET IPV6SUBNET PUBLIC_IP
//                                                      PUBLIC_IPV6 (ours)  stdin "\n"
//   SubnetAddCommand     a peer added (or changed)     SUBNET PUBLIC_IP     stdin: the peer's
//   SubnetRemoveCommand  a peer removed                (the peer's)         BackendData + "\n"
//
// (a variable with no value, e.g. IPV6SUBNET without IPv6, is set to ""). The PreStartupCommand's
// stdout, trimmed, is published as our lease's BackendData, a JSON string; without one the lease
// has none. A peer's BackendData must be a JSON string (refuse_peer_data); its content is only
// ever the command's stdin, never part of argv or the environment.
//
// Lease attrs: {"PublicIP":..,"BackendType":"extension"[,"BackendData":"<output>"]};
// MTU = the external interface's.
//
// Failures: a PreStartupCommand or PostStartupCommand that fails (cannot start, exits non-zero,
// is killed, or outlives CommandTimeout) throws BackendError, so the agent stops at start, as
// flannel exits 1. A SubnetAddCommand that fails leaves the peer unprogrammed and is reported in
// a PeerFailures (the agent retries it alone, with backoff: flannel never retries); a failed
// SubnetRemoveCommand is reported too, but the peer is forgotten either way. Every command run
// is logged through note() as one line: "extension: <Field> [for <subnet>] `<argv>` <status>
// after <ms> ms; output: <stdout+stderr, trimmed, one line>".
//
// Beyond current flannel: the timeout; the retry of a failed add; a peer's add is run again only
// when its PublicIP or BackendData changed (sync() after a store resync re-runs nothing that is
// already in place); BackendData is the stdout alone (flannel includes stderr, so a warning
// printed by the command ends up in the lease); PublicIP is the advertised address (-public-ip
// when given; flannel v0.28.9 publishes the interface's address and ignores -public-ip).
// A peer removed while the agent was down is not seen again, so its SubnetRemoveCommand never
// runs (flannel: the same): the commands own what they program.
//
// Thread safety: as Backend (one caller at a time). Commands run on the caller's thread, one at
// a time: a command that hangs holds the agent for up to CommandTimeout.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/extension/config.h"

namespace flannel {

class ExtensionBackend : public Backend {
 public:
  std::string type() const override { return "extension"; }
  // Runs PreStartupCommand. Throws BackendError for a bad config or a failed command.
  BackendSetup setup(const Config& config, const ExternalInterface& iface) override;
  // Runs PostStartupCommand. Throws BackendError if it fails.
  void lease_acquired(const Lease& ours) override;
  bool wants_peers() const override { return true; }
  // Add for every peer not yet added (or changed), remove for every added peer not in `peers`.
  void sync(const std::vector<Lease>& peers) override;
  void apply(const std::vector<PeerEvent>& batch) override;
  // A peer of BackendType "extension" whose BackendData is not a JSON string.
  std::optional<std::string> refuse_peer_data(const Lease& peer) const override;

  // Peers ignored because their BackendType is not "extension" (since construction).
  size_t skipped_peers() const { return skipped_; }

 private:
  struct Outcome;
  // Runs one configured command line with `vars` added to our environment and `stdin_data`
  // (+ "\n") on its stdin; logs the one line. `who` names the peer ("" for ours).
  Outcome run(const char* field, const std::string& line, const std::vector<std::string>& vars,
              const std::string& stdin_data, const std::string& who) const;
  // One peer added / removed; false with *why set when its command failed.
  bool add_peer(const Lease& peer, std::string* why);
  bool remove_peer(const Lease& peer, std::string* why);
  bool usable(const Lease& peer);  // the right BackendType (else a note), data decodable

  ExtensionConfig cfg_;
  Config config_;
  ExternalInterface iface_;
  // The peers whose add ran (or had nothing to run), by key, as they were then.
  std::map<LeaseKey, Lease> added_;
  size_t skipped_ = 0;
};

}  // namespace flannel
