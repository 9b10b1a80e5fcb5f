// The agent's transition table (daemon/agent/agent_states.h): the README and agent.h show exactly
// the table the code runs, and classify() maps every store answer the way the agent relies on.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "daemon/agent/agent_states.h"

namespace flannel::testing {
namespace {

std::string read_source(const std::string& path) {
  std::ifstream in(std::string(FLANNEL_SOURCE_DIR) + "/" + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The first run of lines starting with `prefix + "|"` after `from`, without `prefix`, each with
// its '\n'. Empty if there is none.
std::string table_after(const std::string& text, const std::string& from,
                        const std::string& prefix) {
  std::istringstream in(text.substr(std::min(text.find(from), text.size())));
  std::string line, table;
  while (std::getline(in, line)) {
    const bool row = line.rfind(prefix + "|", 0) == 0;
    if (!row && !table.empty()) break;
    if (row) table += line.substr(prefix.size()) + "\n";
  }
  return table;
}

TEST(AgentStates, TheReadmeShowsTheTableTheCodeRuns) {
  std::string readme = read_source("README.md");
  ASSERT_NE(readme.find("## The agent's states"), std::string::npos);
  EXPECT_EQ(table_after(readme, "## The agent's states", ""), render_agent_states())
      << "README.md's section \"## The agent's states\" must hold render_agent_states():\n"
      << render_agent_states();
}

TEST(AgentStates, AgentHShowsTheTableTheCodeRuns) {
  EXPECT_EQ(table_after(read_source("daemon/agent/agent.h"), "", "// "), render_agent_states())
      << "daemon/agent/agent.h's header comment must hold render_agent_states(), each line after "
         "\"// \"";
}

TEST(AgentStates, TheTableFitsInACommentOf100Columns) {
  std::istringstream in(render_agent_states());
  std::string line;
  while (std::getline(in, line)) EXPECT_LE(line.size() + 3, 100u) << line;
}

TEST(AgentStates, EveryStateButStoppingIsLeftOnStopAndNothingLeavesStopping) {
  std::set<AgentState> from;
  for (const auto& t : agent_transitions()) from.insert(t.state);
  EXPECT_EQ(from.count(AgentState::kStopping), 0u);
  for (auto s : from) {
    EXPECT_EQ(transition(s, AgentEvent::kStop), AgentState::kStopping) << to_string(s);
  }
  EXPECT_EQ(from.size(), 4u);
}

TEST(AgentStates, TheTableSaysWhereALostLeaseAndAStoreResetLead) {
  EXPECT_EQ(transition(AgentState::kHolding, AgentEvent::kLeaseLost), AgentState::kLost);
  EXPECT_EQ(transition(AgentState::kHolding, AgentEvent::kStoreReset),
            AgentState::kWaitingForConfig);
  EXPECT_EQ(transition(AgentState::kHolding, AgentEvent::kOutage), AgentState::kHolding);
  EXPECT_EQ(transition(AgentState::kAcquiring, AgentEvent::kFatal), AgentState::kStopping);
  EXPECT_EQ(transition(AgentState::kLost, AgentEvent::kOk), AgentState::kHolding);
}

TEST(AgentStates, AnOkAndAResetMeanTheSameToEveryCall) {
  for (auto call : {StoreCall::kGetConfig, StoreCall::kRenew, StoreCall::kCheckLease,
                    StoreCall::kCheckLeaseAfterOutage, StoreCall::kList,
                    StoreCall::kListAfterOutage, StoreCall::kWatch}) {
    EXPECT_EQ(classify(call, StoreCode::kOk), AgentEvent::kOk);
    EXPECT_EQ(classify(call, StoreCode::kStoreReset), AgentEvent::kStoreReset);
  }
}

TEST(AgentStates, NotFoundMeansWhatTheCallAskedFor) {
  EXPECT_EQ(classify(StoreCall::kGetConfig, StoreCode::kNotFound), AgentEvent::kRetry);
  EXPECT_EQ(classify(StoreCall::kRenew, StoreCode::kNotFound), AgentEvent::kLeaseLost);
  EXPECT_EQ(classify(StoreCall::kRenew, StoreCode::kConflict), AgentEvent::kLeaseLost);
  EXPECT_EQ(classify(StoreCall::kCheckLease, StoreCode::kNotFound), AgentEvent::kLeaseLost);
  // A wiped store that already wrote past our index shows itself only this way.
  EXPECT_EQ(classify(StoreCall::kCheckLeaseAfterOutage, StoreCode::kNotFound),
            AgentEvent::kStoreReset);
}

TEST(AgentStates, TransportTroubleIsAnOutageOnlyWhereTheStoreMayComeBackAsAnother) {
  EXPECT_EQ(classify(StoreCall::kWatch, StoreCode::kUnavailable), AgentEvent::kOutage);
  EXPECT_EQ(classify(StoreCall::kWatch, StoreCode::kInvalid), AgentEvent::kOutage);
  EXPECT_EQ(classify(StoreCall::kCheckLease, StoreCode::kUnavailable), AgentEvent::kOutage);
  EXPECT_EQ(classify(StoreCall::kCheckLease, StoreCode::kInvalid), AgentEvent::kRetry);
  EXPECT_EQ(classify(StoreCall::kListAfterOutage, StoreCode::kUnavailable), AgentEvent::kOutage);
  EXPECT_EQ(classify(StoreCall::kList, StoreCode::kUnavailable), AgentEvent::kRetry);
  EXPECT_EQ(classify(StoreCall::kRenew, StoreCode::kUnavailable), AgentEvent::kRetry);
  EXPECT_EQ(classify(StoreCall::kGetConfig, StoreCode::kUnavailable), AgentEvent::kOutage);
}

TEST(AgentStates, AWatchThatTimedOutOrFellBehindIsNoError) {
  EXPECT_EQ(classify(StoreCall::kWatch, StoreCode::kTimeout), AgentEvent::kOk);
  EXPECT_EQ(classify(StoreCall::kWatch, StoreCode::kCancelled), AgentEvent::kOk);
  EXPECT_EQ(classify(StoreCall::kWatch, StoreCode::kHistoryGone), AgentEvent::kRetry);
}

}  // namespace
}  // namespace flannel::testing
