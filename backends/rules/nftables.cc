#include "backends/rules/nftables.h"

#include <nftables/libnftables.h>

#include <stdexcept>
#include <utility>

namespace flannel {

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

// ---- Nftables --------------------------------------------------------------------------------

void Nftables::CtxFree::operator()(nft_ctx* ctx) const { nft_ctx_free(ctx); }

Nftables::Nftables() : ctx_(nft_ctx_new(NFT_CTX_DEFAULT)) {
  if (!ctx_) throw NftablesError("nftables: libnftables could not create a context");
  if (nft_ctx_buffer_output(ctx_.get()) != 0 || nft_ctx_buffer_error(ctx_.get()) != 0) {
    throw NftablesError("nftables: libnftables could not buffer its output");
  }
  nft_ctx_output_set_flags(ctx_.get(), 0);  // no handles, no JSON: the text nft_table_text renders
}

Nftables::~Nftables() = default;
Nftables::Nftables(Nftables&&) noexcept = default;
Nftables& Nftables::operator=(Nftables&&) noexcept = default;

std::string Nftables::run(const std::string& script) {
  if (!ctx_) throw NftablesError("nftables: context used after move");
  // Reading a buffer rewinds it: drop anything a previous call left.
  nft_ctx_get_output_buffer(ctx_.get());
  nft_ctx_get_error_buffer(ctx_.get());
  const int rc = nft_run_cmd_from_buffer(ctx_.get(), script.c_str());
  std::string out = nft_ctx_get_output_buffer(ctx_.get());
  std::string err = trim(nft_ctx_get_error_buffer(ctx_.get()));
  if (rc != 0) {
    if (err.empty()) err = "failed without a message";
    throw NftablesError("nftables: " + err + "\n(script: " + trim(script) + ")");
  }
  return out;
}

std::optional<std::string> Nftables::list_table(bool ipv6) {
  try {
    return run("list table " + nft_table_ref(ipv6));
  } catch (const NftablesError&) {
    // "No such file or directory" is libnftables' strerror(ENOENT); rather than trusting that
    // text, ask for the family's table names and rethrow when ours is there after all.
    const std::string tables = run("list tables " + nft_family(ipv6));
    if (tables.find("table " + nft_table_ref(ipv6) + "\n") == std::string::npos) {
      return std::nullopt;
    }
    throw;
  }
}

void Nftables::delete_table(bool ipv6) { run(nft_delete_script(ipv6)); }

bool Nftables::fully_random_supported() {
  if (!ctx_) return false;
  nft_ctx_set_dry_run(ctx_.get(), true);
  bool ok = true;
  try {
    run("table ip flannel-probe {\n"
        "\tchain probe {\n"
        "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        "\t\tip saddr != 127.0.0.1 masquerade fully-random\n"
        "\t}\n"
        "}\n");
  } catch (const NftablesError&) { ok = false; }
  nft_ctx_set_dry_run(ctx_.get(), false);
  return ok;
}

// ---- NftKeeper -------------------------------------------------------------------------------

namespace {

NftRules checked(NftRules rules) {
  nft_check_rules(rules);
  return rules;
}

}  // namespace

NftKeeper::NftKeeper(Nftables nft, NftRules rules)
    : ipv6_(rules.ipv6), nft_(std::move(nft)), rules_(checked(std::move(rules))) {}

NftKeeper::~NftKeeper() { stop(); }

std::string NftKeeper::name() const { return "nftables " + nft_table_ref(ipv6_); }

NftRepair NftKeeper::ensure() {
  MutexLock lock(&ops_mu_);
  return ensure_locked();
}

NftRepair NftKeeper::ensure_locked() {
  const NftPlan plan = nft_plan(rules_, nft_.list_table(ipv6_), accepted_);
  if (plan.drift == NftPlan::Drift::kNone) return {};
  nft_.run(plan.script);
  // What this nft prints for what we just wrote: accepted as right from now on, even where its
  // text differs from nft_table_text() (another nft version), so that costs one rewrite at most.
  accepted_ = nft_.list_table(ipv6_);
  return {true, plan.drift, plan.reason};
}

NftRepair NftKeeper::set_rules(NftRules rules) {
  nft_check_rules(rules);
  MutexLock lock(&ops_mu_);
  if (rules.ipv6 != ipv6_) {
    throw std::invalid_argument(name() + ": set_rules with rules of the other address family");
  }
  rules_ = std::move(rules);
  accepted_.reset();  // read back for the old rules
  return ensure_locked();
}

NftRules NftKeeper::rules() const {
  MutexLock lock(&ops_mu_);
  return rules_;
}

void NftKeeper::remove() {
  stop();
  MutexLock lock(&ops_mu_);
  nft_.delete_table(ipv6_);
  accepted_.reset();
}

NftKeeperStats NftKeeper::stats() const {
  ResyncThread::Stats r = resync_.stats();
  MutexLock lock(&ops_mu_);
  return {r.passes, repairs_, r.failures, r.last_error};
}

void NftKeeper::start(std::chrono::milliseconds period, Listener listener) {
  auto pass = [this] {
    std::vector<std::string> restored;
    MutexLock lock(&ops_mu_);
    NftRepair repair = ensure_locked();
    if (repair.repaired) {
      ++repairs_;
      restored.push_back(name() + ": repaired (" + repair.reason + ")");
    }
    return restored;
  };
  resync_.start(name(), name() + ": cannot check the table", period, pass, std::move(listener));
}

void NftKeeper::stop() { resync_.stop(); }

}  // namespace flannel
