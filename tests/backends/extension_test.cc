// The extension backend: its pure parts (config decoding, the split and $VAR expansion of a
// command line as current flannel's runCmd, the BackendData codec) and the backend itself
// running real commands (sh scripts in a temp dir: no root, no devices; the lab test
// tests/lab/extension_labtest.cc programs routes with it).
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "backends/backend.h"
#include "backends/extension/command.h"
#include "backends/extension/config.h"
#include "backends/extension/extension.h"

namespace flannel {
namespace {

namespace fs = std::filesystem;
using Words = std::vector<std::string>;

std::string config_error(const std::string& json) {
  try {
    decode_extension_config(json);
  } catch (const BackendError& e) { return e.what(); }
  return "(no error)";
}

TEST(ExtensionConfig, DecodesTheFourCommandsAndTheTimeout) {
  ExtensionConfig c = decode_extension_config(
      R"({"Type":"extension","PreStartupCommand":"cat /etc/hostname",)"
      R"("postStartupCommand":"true","SUBNETADDCOMMAND":"ip route replace $SUBNET via $PUBLIC_IP",)"
      R"("SubnetRemoveCommand":"ip route del $SUBNET","CommandTimeout":3})");
  EXPECT_EQ(c.pre_startup, "cat /etc/hostname");
  EXPECT_EQ(c.post_startup, "true");
  EXPECT_EQ(c.subnet_add, "ip route replace $SUBNET via $PUBLIC_IP");
  EXPECT_EQ(c.subnet_remove, "ip route del $SUBNET");
  EXPECT_EQ(c.timeout, std::chrono::seconds(3));
  EXPECT_TRUE(c.warnings.empty());
  ExtensionConfig d = decode_extension_config(R"({"Type":"extension"})");
  EXPECT_EQ(d, ExtensionConfig{});
  EXPECT_EQ(d.timeout, std::chrono::seconds(10));
  EXPECT_EQ(decode_extension_config("").subnet_add, "");
  // null keeps the default, the last key wins, a blank command is no command
  EXPECT_EQ(
      decode_extension_config(R"({"SubnetAddCommand":"a","subnetaddcommand":"b"})").subnet_add,
      "b");
  EXPECT_EQ(decode_extension_config(R"({"SubnetAddCommand":null})").subnet_add, "");
  EXPECT_EQ(decode_extension_config(R"({"SubnetAddCommand":" \t "})").subnet_add, "");
  EXPECT_EQ(decode_extension_config(R"({"CommandTimeout":null})").timeout,
            std::chrono::seconds(10));
}

TEST(ExtensionConfig, BadValuesAreNamed) {
  EXPECT_EQ(
      config_error(R"({"SubnetAddCommand":["ip","route"]})"),
      R"(error decoding backend config: SubnetAddCommand must be a string (a command line), got ["ip","route"])");
  EXPECT_EQ(config_error(R"({"PreStartupCommand":5})"),
            "error decoding backend config: PreStartupCommand must be a string (a command line), "
            "got 5");
  EXPECT_EQ(config_error(R"({"CommandTimeout":"10s"})"),
            "error decoding backend config: CommandTimeout must be an integer number of seconds "
            "like 10, got \"10s\"");
  EXPECT_EQ(config_error(R"({"CommandTimeout":0})"),
            "error decoding backend config: CommandTimeout must be between 1 and 3600 seconds, "
            "got 0");
  EXPECT_NE(config_error("[1]").find("expected an object"), std::string::npos);
}

TEST(ExtensionConfig, WarnsOfShutdownCommandAndQuotes) {
  // flannel's own docs example: without a shell the quotes reach `ip` and it fails
  ExtensionConfig c = decode_extension_config(
      R"({"SubnetAddCommand":"ip route add \"$SUBNET\" via \"$PUBLIC_IP\"",)"
      R"("ShutdownCommand":"ip link del flannel-vxlan"})");
  ASSERT_EQ(c.warnings.size(), 2u);
  EXPECT_NE(c.warnings[0].find("ShutdownCommand is ignored"), std::string::npos) << c.warnings[0];
  EXPECT_NE(c.warnings[1].find("SubnetAddCommand word \"$SUBNET\" contains a quote"),
            std::string::npos)
      << c.warnings[1];
}

TEST(ExtensionCommand, SplitsOnWhitespaceOnly) {
  EXPECT_EQ(split_fields("  ip  route\treplace\n10.5.1.0/24  "),
            (Words{"ip", "route", "replace", "10.5.1.0/24"}));
  EXPECT_EQ(split_fields(""), Words{});
  EXPECT_EQ(split_fields(" \t\r\n\v\f"), Words{});
  // no shell: quotes, operators and substitutions are ordinary characters
  EXPECT_EQ(split_fields(R"(sh -c "echo a; b" && $(x) | y)"),
            (Words{"sh", "-c", "\"echo", "a;", "b\"", "&&", "$(x)", "|", "y"}));
}

TEST(ExtensionCommand, ExpandsAsGoOsExpand) {
  std::map<std::string, std::string> vars{
      {"SUBNET", "10.5.1.0/24"}, {"A", "x y"}, {"1", "one"}, {"$", "dollar"}};
  auto lookup = [&](const std::string& name) {
    auto it = vars.find(name);
    return it == vars.end() ? std::string() : it->second;
  };
  auto ex = [&](const std::string& s) { return expand_vars(s, lookup); };
  EXPECT_EQ(ex("$SUBNET"), "10.5.1.0/24");
  EXPECT_EQ(ex("${SUBNET}"), "10.5.1.0/24");
  EXPECT_EQ(ex("via=${SUBNET}!"), "via=10.5.1.0/24!");
  EXPECT_EQ(ex("$SUBNET.x"), "10.5.1.0/24.x");
  EXPECT_EQ(ex("$SUBNETX"), "");  // unknown: empty
  EXPECT_EQ(ex("$A"), "x y");     // not split again
  EXPECT_EQ(ex("$10"), "one0");   // special names are one character
  EXPECT_EQ(ex("$$"), "dollar");
  EXPECT_EQ(ex("${1}"), "one");
  EXPECT_EQ(ex("a$"), "a$");              // a '$' at the end stays
  EXPECT_EQ(ex("a$/b"), "a$/b");          // as one followed by no name
  EXPECT_EQ(ex("a${}b"), "ab");           // bad syntax is dropped
  EXPECT_EQ(ex("a${SUBNET"), "aSUBNET");  // "${" without '}' is dropped
  EXPECT_EQ(ex("plain"), "plain");
  EXPECT_EQ(ex(""), "");
}

TEST(ExtensionCommand, ArgvFromTheEnvironment) {
  Words env{"PATH=/bin", "SUBNET=10.5.1.0/24", "PUBLIC_IP=10.250.0.2", "SUBNET=10.5.2.0/24"};
  EXPECT_EQ(
      command_argv("ip route replace $SUBNET via ${PUBLIC_IP} dev eth0 $NOPE", env),
      (Words{"ip", "route", "replace", "10.5.2.0/24", "via", "10.250.0.2", "dev", "eth0", ""}));
  EXPECT_EQ(expand_vars("$PATH", env), "/bin");
  EXPECT_EQ(command_argv("   ", env), Words{});
}

TEST(ExtensionData, OnlyAJsonStringIsAccepted) {
  std::string why;
  EXPECT_EQ(decode_extension_data("", &why), "");
  EXPECT_EQ(decode_extension_data("null", &why), "");
  EXPECT_EQ(decode_extension_data(R"("aa:bb\n\"x\"")", &why), "aa:bb\n\"x\"");
  for (std::string bad : {R"({"VtepMAC":"aa"})", "5", "[\"a\"]", "true"}) {
    why.clear();
    EXPECT_EQ(decode_extension_data(bad, &why), std::nullopt) << bad;
    EXPECT_EQ(why, "BackendData " + bad +
                       " is not a JSON string (an extension host publishes its PreStartupCommand's "
                       "output as one)");
  }
  EXPECT_EQ(decode_extension_data("{", &why), std::nullopt);
  EXPECT_EQ(why, "BackendData { is not valid JSON");
  EXPECT_EQ(encode_extension_data("a<b\n\"c\""), R"("a\u003cb\n\"c\"")");
  EXPECT_EQ(encode_extension_data(""), R"("")");
}

// ---- the backend, running real commands ----------------------------------------------------

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/flannel-ext-XXXXXX";
    path_ = ::mkdtemp(tmpl) ? tmpl : "";
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

// An executable /bin/sh script.
std::string script(const TempDir& dir, const std::string& name, const std::string& body) {
  std::string path = dir.path() + "/" + name;
  std::ofstream(path) << "#!/bin/sh\n" << body;
  ::chmod(path.c_str(), 0755);
  return path;
}

Lease peer(const std::string& subnet, const std::string& ip, const std::string& data,
           const std::string& type = "extension") {
  Lease l;
  l.subnet = IP4Net::parse(subnet);
  l.attrs.public_ip = IP4::parse(ip);
  l.attrs.backend_type = type;
  l.attrs.backend_data = data;
  return l;
}

struct Harness {
  TempDir dir;
  ExtensionBackend backend;
  std::vector<std::string> notes;
  ExternalInterface iface;
  Harness() {
    iface.name = "eth0";
    iface.index = 2;
    iface.mtu = 1500;
    iface.iface_addr = iface.ext_addr = IP4::parse("10.250.0.1");
    backend.set_notify([this](const std::string& l) { notes.push_back(l); });
  }
  BackendSetup setup(const std::string& backend_json) {
    Config c = parse_config(R"({"Network":"10.5.0.0/16","Backend":)" + backend_json + "}");
    return backend.setup(c, iface);
  }
  std::string all_notes() const {
    std::string s;
    for (const auto& n : notes) s += n + "\n";
    return s;
  }
};

TEST(ExtensionBackend, PreStartupOutputIsTheBackendData) {
  Harness h;
  BackendSetup s = h.setup(R"({"Type":"extension","PreStartupCommand":"echo  <mac>  \"q\""})");
  EXPECT_EQ(s.attrs.backend_type, "extension");
  EXPECT_EQ(s.attrs.public_ip, IP4::parse("10.250.0.1"));
  EXPECT_EQ(s.mtu, 1500);
  EXPECT_EQ(s.attrs.backend_data, R"("\u003cmac\u003e \"q\"")");
  EXPECT_EQ(
      encode_lease_attrs(s.attrs),
      R"({"PublicIP":"10.250.0.1","BackendType":"extension","BackendData":"\u003cmac\u003e \"q\""})");
  ASSERT_EQ(h.notes.size(), 2u);  // the quote warning, then the run
  EXPECT_NE(h.notes[0].find("PreStartupCommand word \"q\" contains a quote"), std::string::npos)
      << h.notes[0];
  EXPECT_EQ(h.notes[1].rfind(
                "extension: PreStartupCommand `echo <mac> '\"q\"'` exited with status 0 after ", 0),
            0u)
      << h.notes[1];
  EXPECT_NE(h.notes[1].find("ms; output: <mac> \"q\""), std::string::npos) << h.notes[1];

  Harness none;
  EXPECT_EQ(none.setup(R"({"Type":"extension"})").attrs.backend_data, "");
  EXPECT_TRUE(none.notes.empty());
}

TEST(ExtensionBackend, FailedStartupCommandsThrowWithTheirStatus) {
  Harness h;
  auto fail = script(h.dir, "fail.sh", "echo nope >&2\nexit 3\n");
  try {
    h.setup(R"({"Type":"extension","PreStartupCommand":")" + fail + R"("})");
    FAIL() << "no error";
  } catch (const BackendError& e) {
    EXPECT_EQ(std::string(e.what()),
              "extension: PreStartupCommand `" + fail + "` exited with status 3: nope");
  }
  Harness p;
  p.setup(R"({"Type":"extension","PostStartupCommand":"/nonexistent/cmd $SUBNET"})");
  Lease ours = peer("10.5.7.0/24", "10.250.0.1", "");
  try {
    p.backend.lease_acquired(ours);
    FAIL() << "no error";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find("PostStartupCommand `/nonexistent/cmd 10.5.7.0/24` "
                                         "could not be started: cannot execute /nonexistent/cmd"),
              std::string::npos)
        << e.what();
  }
}

TEST(ExtensionBackend, PostStartupGetsOurVariables) {
  Harness h;
  auto rec =
      script(h.dir, "post.sh",
             "echo \"$NETWORK|$SUBNET|$IPV6SUBNET|$PUBLIC_IP|$PUBLIC_IPV6|$1\" > \"$0.out\"\n");
  h.setup(R"({"Type":"extension","PostStartupCommand":")" + rec + R"( ${SUBNET}"})");
  Lease ours = peer("10.5.7.0/24", "10.250.0.1", "");
  h.backend.lease_acquired(ours);
  EXPECT_EQ(read(rec + ".out"), "10.5.0.0/16|10.5.7.0/24||10.250.0.1||10.5.7.0/24\n");
}

TEST(ExtensionBackend, PeersRunAddAndRemoveWithTheirDataOnStdin) {
  Harness h;
  // Records each run: the command's name, its variables and its stdin, one line each.
  auto add =
      script(h.dir, "add.sh",
             "printf '%s %s %s ' \"$0\" \"$SUBNET\" \"$PUBLIC_IP\" >> \"$LOG\"\ncat >> \"$LOG\"\n");
  auto log = h.dir.path() + "/runs";
  ::setenv("LOG", log.c_str(), 1);  // flanneld's environment reaches the commands
  h.setup(R"({"Type":"extension","SubnetAddCommand":")" + add + R"(","SubnetRemoveCommand":")" +
          add + R"("})");
  Lease a = peer("10.5.1.0/24", "10.250.0.2", R"("$(reboot); `x` \"d\"")");
  Lease b = peer("10.5.2.0/24", "10.250.0.3", "");
  h.backend.sync({a, b});
  EXPECT_EQ(read(log), add + " 10.5.1.0/24 10.250.0.2 $(reboot); `x` \"d\"\n" + add +
                           " 10.5.2.0/24 10.250.0.3 \n");
  // The same set again runs nothing; a changed peer runs its add again; a vanished one, remove.
  std::filesystem::remove(log);
  h.backend.sync({a, b});
  EXPECT_EQ(read(log), "");
  Lease a2 = a;
  a2.attrs.public_ip = IP4::parse("10.250.0.9");
  h.backend.sync({a2});
  EXPECT_EQ(read(log), add + " 10.5.1.0/24 10.250.0.9 $(reboot); `x` \"d\"\n" + add +
                           " 10.5.2.0/24 10.250.0.3 \n");
  std::filesystem::remove(log);
  h.backend.apply({{PeerEvent::Type::kRemoved, a2}, {PeerEvent::Type::kAdded, b}});
  EXPECT_EQ(read(log), add + " 10.5.1.0/24 10.250.0.9 $(reboot); `x` \"d\"\n" + add +
                           " 10.5.2.0/24 10.250.0.3 \n");
  ::unsetenv("LOG");
}

TEST(ExtensionBackend, OtherPeersAreSkippedAndBadDataRefused) {
  Harness h;
  h.setup(R"({"Type":"extension","SubnetAddCommand":"true"})");
  EXPECT_EQ(
      h.backend.refuse_peer_data(peer("10.5.1.0/24", "10.250.0.2", R"({"VtepMAC":"x"})")),
      R"(BackendData {"VtepMAC":"x"} is not a JSON string (an extension host publishes its PreStartupCommand's output as one))");
  EXPECT_EQ(h.backend.refuse_peer_data(peer("10.5.1.0/24", "10.250.0.2", R"("ok")")), std::nullopt);
  EXPECT_EQ(
      h.backend.refuse_peer_data(peer("10.5.1.0/24", "10.250.0.2", R"({"VtepMAC":"x"})", "vxlan")),
      std::nullopt);  // another backend's peers are skipped, not judged
  h.backend.sync({peer("10.5.3.0/24", "10.250.0.4", R"({"VtepMAC":"x"})", "vxlan")});
  EXPECT_EQ(h.backend.skipped_peers(), 1u);
  EXPECT_NE(h.all_notes().find("skipping peer 10.5.3.0/24: its BackendType is \"vxlan\""),
            std::string::npos)
      << h.all_notes();
  EXPECT_EQ(h.all_notes().find("SubnetAddCommand"), std::string::npos) << h.all_notes();
}

TEST(ExtensionBackend, FailedAndHungCommandsAreReportedPerPeer) {
  Harness h;
  auto add = script(h.dir, "add.sh",
                    "case \"$SUBNET\" in 10.5.1.0/24) echo bad >&2; exit 3;; 10.5.2.0/24) exec "
                    "sleep 30;; esac\necho fine\n");
  h.setup(R"({"Type":"extension","SubnetAddCommand":")" + add + R"(","CommandTimeout":1})");
  auto start = std::chrono::steady_clock::now();
  try {
    h.backend.sync({peer("10.5.1.0/24", "10.250.0.2", ""), peer("10.5.2.0/24", "10.250.0.3", ""),
                    peer("10.5.3.0/24", "10.250.0.4", "")});
    FAIL() << "no error";
  } catch (const PeerFailures& e) {
    ASSERT_EQ(e.peers().size(), 2u) << e.what();
    EXPECT_TRUE(e.only_peers());
    EXPECT_EQ(e.peers()[0].key, LeaseKey(IP4Net::parse("10.5.1.0/24")));
    EXPECT_EQ(e.peers()[0].reason, "SubnetAddCommand `" + add + "` exited with status 3: bad");
    EXPECT_EQ(e.peers()[1].key, LeaseKey(IP4Net::parse("10.5.2.0/24")));
    EXPECT_EQ(e.peers()[1].reason,
              "SubnetAddCommand `" + add + "` timed out after 1 s (CommandTimeout) and was killed");
  }
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds(5)) << "the hung command was not killed at its timeout";
  std::string notes = h.all_notes();
  EXPECT_NE(notes.find("extension: SubnetAddCommand for 10.5.1.0/24 `" + add +
                       "` exited with status 3 after "),
            std::string::npos)
      << notes;
  EXPECT_NE(notes.find("extension: SubnetAddCommand for 10.5.3.0/24 `" + add +
                       "` exited with status 0 after "),
            std::string::npos)
      << notes;
  EXPECT_NE(notes.find("ms; output: fine"), std::string::npos) << notes;
}

}  // namespace
}  // namespace flannel
