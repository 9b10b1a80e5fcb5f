// nftables: the nftables mode of the masquerade and forward rules (current flannel's
// EnableNFTables), run in-process through libnftables (Debian 12: nftables 1.0.6); no `nft`
// binary is spawned. What the tables hold, and the scripts that write them, are in nft_rules.h.
//
//   current flannel (facts §1)                  here
//   written once, never checked again           NftKeeper re-reads the table every period and
//                                               repairs it in one transaction when it differs
//   exact `meta mark 0x4000`; dead rule 6       iptables-mode rules (mark & 0x4000, ! C -> P)
//   disabling masq/forward leaves the chain     the table holds exactly what is wanted
//   knftables drives the nft CLI                libnftables, one netlink batch per change
//
// Network namespace: a libnftables context opens its netlink socket when it is created, in the
// network namespace of the creating thread at that moment, and keeps talking to that namespace's
// ruleset whichever thread uses it later (the lab test checks this). Create the Nftables inside
// the namespace whose rules it should manage (tests: in a thread moved there with EnterNetns).
//
// Thread safety: Nftables is NOT thread-safe (one nft_ctx, one output buffer): one owner, or a
// mutex around it. NftKeeper serialises its own operations; its public methods may be called
// from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "backends/backend.h"
#include "backends/rules/nft_rules.h"
#include "backends/rules/resync.h"
#include "core/thread_annotations.h"

struct nft_ctx;

namespace flannel {

// A libnftables failure; the message quotes libnftables' error text, which names the failing
// script line and marks the bad token (e.g. "Could not resolve hostname" under "10.5.0.300/16").
class NftablesError : public BackendError {
 public:
  using BackendError::BackendError;
};

class Nftables {
 public:
  // Creates the context (in the calling thread's network namespace, see above) with output and
  // errors buffered and default output flags: no handles, so listings compare as text. Throws
  // NftablesError if libnftables cannot create it.
  Nftables();
  ~Nftables();
  Nftables(Nftables&&) noexcept;
  Nftables& operator=(Nftables&&) noexcept;

  // Runs an nft script as one transaction (one nft_run_cmd_from_buffer = one netlink batch) and
  // returns what nft printed (listings). On failure nothing of the script is applied and it
  // throws NftablesError: "nftables: <libnftables' errors> (script: <script>)".
  std::string run(const std::string& script);

  // `list table ip flannel-ipv4` (ip6 flannel-ipv6) as nft prints it; nullopt when the table
  // does not exist. Throws NftablesError for any other failure.
  std::optional<std::string> list_table(bool ipv6);

  // Deletes our table of that family; no-op when absent. Throws NftablesError.
  void delete_table(bool ipv6);

  // Whether the kernel accepts `masquerade fully-random`: a dry run (nothing is committed) of a
  // scratch table `flannel-probe` holding such a rule. Never throws: any failure answers false.
  bool fully_random_supported();

 private:
  struct CtxFree {
    void operator()(nft_ctx* ctx) const;
  };
  std::unique_ptr<nft_ctx, CtxFree> ctx_;
};

struct NftKeeperStats {
  uint64_t passes = 0;     // resync passes run by the thread
  uint64_t repairs = 0;    // passes that found the table wrong and rewrote it
  uint64_t failures = 0;   // passes that threw
  std::string last_error;  // "" once a pass succeeds
};

// What one ensure() did.
struct NftRepair {
  bool repaired = false;  // a transaction was applied
  NftPlan::Drift drift = NftPlan::Drift::kNone;
  std::string
      reason;  // "" when nothing was done, else e.g. "table missing", "chain postrtg differs"
};

// Keeps one family's table exactly as wanted. One per address family.
class NftKeeper {
 public:
  using Listener = std::function<void(const ResyncEvent&)>;

  // Takes the context (already in the right namespace). Runs nothing yet. Throws
  // std::invalid_argument naming a bad value of `rules` (nft_check_rules).
  NftKeeper(Nftables nft, NftRules rules);
  // Stops the thread. Leaves the table (pods keep working while the agent restarts).
  ~NftKeeper();
  NftKeeper(const NftKeeper&) = delete;
  NftKeeper& operator=(const NftKeeper&) = delete;

  // Reads the table once and compares it in-process with what it should be (nft_plan: the
  // canonical text, or the listing read back after our own last write). Equal: changes nothing.
  // Else applies the repair (whole table, or only the chains that differ) in one transaction,
  // reads the result back to remember it, and says what it repaired and why. Throws
  // NftablesError; a failed transaction changed nothing.
  NftRepair ensure() EXCLUDES(ops_mu_);

  // Switches to other rules (e.g. the lease moved) and applies them at once, in one transaction
  // (ensure()). Throws std::invalid_argument for bad rules or another family (nothing changes),
  // NftablesError if the transaction fails (the keeper then holds the new rules; the table is
  // still the old one, and the next pass retries).
  NftRepair set_rules(NftRules rules) EXCLUDES(ops_mu_);
  NftRules rules() const EXCLUDES(ops_mu_);

  // Stops the resync thread, then deletes the table. Throws NftablesError.
  void remove() EXCLUDES(ops_mu_);

  // Starts the resync thread: every `period` it runs ensure(), reporting repairs (kRestored),
  // failures (once per distinct message) and recoveries to `listener`, on that thread (it must
  // not call back into this keeper). The first pass runs one period after start: call ensure()
  // first. Throws std::invalid_argument if period < 1 s, std::logic_error if already started.
  void start(std::chrono::milliseconds period, Listener listener);
  // Stops and joins the thread (at once when it waits; else after its pass). Idempotent.
  void stop();

  NftKeeperStats stats() const EXCLUDES(ops_mu_);

 private:
  NftRepair ensure_locked() REQUIRES(ops_mu_);
  std::string name() const;  // "nftables ip flannel-ipv4", for messages

  const bool ipv6_;
  mutable Mutex ops_mu_;  // also serialises every use of nft_
  Nftables nft_ GUARDED_BY(ops_mu_);
  NftRules rules_ GUARDED_BY(ops_mu_);
  std::optional<std::string> accepted_ GUARDED_BY(ops_mu_);  // read back after our last write
  uint64_t repairs_ GUARDED_BY(ops_mu_) = 0;                 // by the resync thread

  ResyncThread resync_;  // last: stopped (by the destructor) before the rest goes
};

}  // namespace flannel
