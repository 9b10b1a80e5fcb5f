#include "tests/daemon/agent_fixture.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "core/lease.h"
#include "core/subnet_env.h"
#include "tests/support/wait.h"

namespace flannel::testing {

std::string KindName(const ::testing::TestParamInfo<LabStore::Kind>& info) {
  return to_string(info.param);
}

void AgentTest::SetUp() {
  cleanup_stale_labs();
  char tmpl[] = "/tmp/flannel-agent-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  dir_ = tmpl;
  lab_ = std::make_unique<Lab>("a");
  store_ = std::make_unique<LabStore>(GetParam(), *lab_, dir_, "/flannel-test/network");
}

void AgentTest::TearDown() {
  if (HasFailure()) {
    for (auto& [i, p] : agents_) std::cerr << "---- flanneld h" << i << " log:\n" << p->output();
  }
  agents_.clear();
  store_.reset();
  lab_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

const Lab::Host& AgentTest::host(int i) {
  while (static_cast<int>(lab_->hosts().size()) < i) lab_->add_host();
  return lab_->hosts().at(static_cast<size_t>(i - 1));
}

Process& AgentTest::start_agent(int i, const std::vector<std::string>& extra,
                                const std::map<std::string, std::string>& env) {
  const auto& h = host(i);
  std::vector<std::string> argv{std::string(FLANNEL_BIN_DIR) + "/flanneld"};
  for (const auto& f : store_->flags()) argv.push_back(f);
  argv.push_back("-subnet-file=" + subnet_file(i));
  argv.push_back("-iface=eth0");
  argv.insert(argv.end(), extra.begin(), extra.end());
  agents_.erase(i);
  auto p =
      std::make_unique<Process>(Process::Spec{argv, env, {"NOTIFY_SOCKET"}, h.netns, log_file(i)});
  return *(agents_[i] = std::move(p));
}

void AgentTest::stop_agent(int i) {
  auto& p = agent(i);
  p.signal(SIGTERM);
  auto code = p.wait(std::chrono::seconds(1));
  ASSERT_TRUE(code.has_value()) << "flanneld did not exit within 1 s of SIGTERM";
  EXPECT_EQ(*code, 0) << p.output();
}

void AgentTest::set_config(const std::string& json) {
  std::string out;
  int rc = store_->kind() == LabStore::Kind::kEtcd
               ? store_->etcdctl({"set", store_->prefix() + "/config", json}, &out)
           : store_->kind() == LabStore::Kind::kEtcdV3
               ? store_->etcdctl({"put", store_->prefix() + "/config", json}, &out)
               : store_->ctl({"config", "set", "--force", json}, &out);
  ASSERT_EQ(rc, 0) << out;
}

std::optional<IP4Net> AgentTest::wait_subnet(int i, std::chrono::milliseconds timeout) {
  std::string path = subnet_file(i);
  if (!wait_until([&] { return std::filesystem::exists(path); }, timeout)) {
    // Said at once, before the assertion's own message: CI shows the lines around a failure,
    // and the whole logs TearDown prints may be cut away.
    std::string log = agents_.count(i) ? agents_.at(i)->output() : "";
    size_t from = log.size();
    for (int lines = 0; lines <= 8 && from > 0; ++lines) {
      size_t nl = from >= 2 ? log.rfind('\n', from - 2) : std::string::npos;
      from = nl == std::string::npos ? 0 : nl + 1;
    }
    std::cerr << "wait_subnet: host " << i << " wrote no subnet file within " << timeout.count()
              << " ms; flanneld "
              << (agents_.count(i) && agents_.at(i)->running() ? "running" : "not running")
              << "; the end of its log:\n"
              << log.substr(from) << std::flush;
    if (lab_ && agents_.count(i)) {  // is it the path to the store, or the agent?
      const std::string& ns = host(i).netns;
      std::string out;
      auto show = [&](const std::vector<std::string>& argv, const std::string& in) {
        out.clear();
        int rc = run_command(argv, &out, in);
        std::cerr << "  [" << (in == ns ? "host" : "hub") << "] " << argv[0] << " " << argv[1]
                  << " ... (rc " << rc << "):\n"
                  << out;
      };
      show({"ping", "-c", "1", "-W", "1", "10.250.0.254"}, ns);
      show({"ip", "neigh", "show"}, ns);
      show({"ss", "-tan"}, ns);
      show({"ip", "neigh", "show"}, lab_->hub());
      show({"ip", "-br", "link", "show"}, lab_->hub());
      show({"ss", "-tanl"}, lab_->hub());
      std::cerr << std::flush;
    }
    return std::nullopt;
  }
  return previous_subnet_from_env(parse_env_file(read_file(path)));
}

std::string AgentTest::lease_value(const LeaseKey& subnet) {
  std::string out;
  if (store_->is_etcd()) {
    std::vector<std::string> get{"get", store_->prefix() + "/subnets/" + subnet_key(subnet)};
    if (store_->kind() == LabStore::Kind::kEtcdV3) get.push_back("--print-value-only");
    if (store_->etcdctl(get, &out) != 0) return "";
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  if (store_->ctl({"subnets", "get", subnet_key(subnet)}, &out) != 0) return "";
  return nlohmann::ordered_json::parse(out)["value"].dump();
}

std::vector<IP4Net> AgentTest::lease_subnets() {
  std::string out;
  std::vector<IP4Net> subnets;
  if (store_->ctl({"subnets", "list", "--json"}, &out) != 0) return subnets;
  auto start = out.find('[');
  if (start == std::string::npos) return subnets;
  for (const auto& l : nlohmann::json::parse(out.substr(start)))
    subnets.push_back(IP4Net::parse(l["subnet"].get<std::string>()));
  return subnets;
}

int AgentTest::http_status(int i, int port, const std::string& path, std::string* body) {
  std::string out;
  run_command({"curl", "-s", "-m", "2", "-o", "/dev/stderr", "-w", "%{http_code}",
               "http://127.0.0.1:" + std::to_string(port) + path},
              &out, host(i).netns);
  // stdout and stderr share the capture: body first, then the 3-digit code.
  if (out.size() < 3) return 0;
  if (body) *body = out.substr(0, out.size() - 3);
  return std::atoi(out.substr(out.size() - 3).c_str());
}

}  // namespace flannel::testing
