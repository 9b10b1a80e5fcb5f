// -store=etcd detection (EtcdDetectStore) against real etcds: one with the v2 API enabled, one
// without (as etcd 3.5/3.6 run by default).
#include <gtest/gtest.h>

#include "stores/etcd/detect_store.h"
#include "tests/stores/etcd/v3_support.h"
#include "tests/support/etcd_server.h"

namespace flannel::testing {
namespace {

struct Logged {
  std::vector<std::string> lines;
  StoreLog sink() {
    return [this](const std::string& l) { lines.push_back(l); };
  }
};

TEST(EtcdDetect, ConfigInV2ChoosesV2) {
  EtcdServer& server = EtcdServer::shared();  // v2 enabled
  const std::string prefix = EtcdServer::unique_prefix("detect");
  server.raw("PUT", "/v2/keys" + prefix + "/config",
             "value=%7B%22Network%22%3A%2210.5.0.0%2F16%22%7D");
  Logged log;
  auto store =
      open_store(parse_store_spec("etcd"), server.client_options(prefix), prefix, log.sink());
  std::string cfg;
  ASSERT_TRUE(store->get_config(&cfg).ok());
  EXPECT_EQ(cfg, R"({"Network":"10.5.0.0/16"})");
  ASSERT_EQ(log.lines.size(), 1u);
  EXPECT_NE(log.lines[0].find("Using etcd v2 API at " + server.endpoint()), std::string::npos)
      << log.lines[0];
  EXPECT_EQ(store->describe().rfind("etcd [", 0), 0u) << store->describe();  // the v2 store
  server.raw("DELETE", "/v2/keys" + prefix + "?recursive=true");
}

TEST(EtcdDetect, ConfigOnlyInV3ChoosesV3EvenWhenV2Answers) {
  EtcdServer& server = EtcdServer::shared();  // v2 enabled, config written with the v3 API
  const std::string prefix = EtcdServer::unique_prefix("detect");
  v3_put(server, prefix + "/config", R"({"Network":"10.6.0.0/16"})");
  Logged log;
  auto store =
      open_store(parse_store_spec("etcd"), server.client_options(prefix), prefix, log.sink());
  std::string cfg;
  ASSERT_TRUE(store->get_config(&cfg).ok());
  EXPECT_EQ(cfg, R"({"Network":"10.6.0.0/16"})");
  ASSERT_EQ(log.lines.size(), 1u);
  EXPECT_NE(log.lines[0].find("Using etcd v3 API"), std::string::npos) << log.lines[0];
  EXPECT_EQ(store->describe().rfind("etcd v3 [", 0), 0u) << store->describe();
  v3_delete_prefix(server, prefix);
}

TEST(EtcdDetect, WaitsLoggingTheProbeOnceThenTakesWhicheverGetsTheConfig) {
  EtcdServer& server = EtcdServer::shared_v3();  // no v2 API at all
  const std::string prefix = EtcdServer::unique_prefix("detect");
  Logged log;
  auto store =
      open_store(parse_store_spec("etcd"), server.client_options(prefix), prefix, log.sink());
  std::string cfg;
  for (int i = 0; i < 3; ++i) {
    Status s = store->get_config(&cfg);
    EXPECT_EQ(s.code, StoreCode::kNotFound) << s.message;
  }
  ASSERT_EQ(log.lines.size(), 1u) << "the probe is logged once";
  EXPECT_NE(log.lines[0].find("v2 keys API unavailable"), std::string::npos) << log.lines[0];
  EXPECT_NE(log.lines[0].find("v3 API answers, no config"), std::string::npos) << log.lines[0];
  v3_put(server, prefix + "/config", R"({"Network":"10.7.0.0/16"})");
  ASSERT_TRUE(store->get_config(&cfg).ok());
  ASSERT_EQ(log.lines.size(), 2u);
  EXPECT_NE(log.lines[1].find("Using etcd v3 API"), std::string::npos) << log.lines[1];
  v3_delete_prefix(server, prefix);
}

TEST(EtcdDetect, ConfigSetBeforeAChoiceWritesV3WhenV2DoesNotAnswer) {
  EtcdServer& server = EtcdServer::shared_v3();
  const std::string prefix = EtcdServer::unique_prefix("detect");
  auto store = open_store(parse_store_spec("etcd"), server.client_options(prefix), prefix);
  ASSERT_TRUE(store->set_config(R"({"Network":"10.8.0.0/16"})").ok());
  auto kv = v3_get(server, prefix + "/config");
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->value, R"({"Network":"10.8.0.0/16"})");
  v3_delete_prefix(server, prefix);
}

TEST(EtcdDetect, ForcedApisAndBadSpecs) {
  EXPECT_EQ(parse_store_spec("etcdv2").kind, StoreSpec::Kind::kEtcdV2);
  EXPECT_EQ(parse_store_spec("etcdv3").kind, StoreSpec::Kind::kEtcdV3);
  try {
    parse_store_spec("etcd3");
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("etcdv3"), std::string::npos) << e.what();
  }
  Logged log;
  EtcdServer& server = EtcdServer::shared_v3();
  auto store =
      open_store(parse_store_spec("etcdv3"), server.client_options("/x"), "/x", log.sink());
  ASSERT_EQ(log.lines.size(), 1u);
  EXPECT_EQ(log.lines[0], "Using etcd v3 API at " + server.endpoint() + " (-store=etcdv3)");
}

}  // namespace
}  // namespace flannel::testing
