// The wireguard backend's pure parts: config decoding, the lease BackendData codec, keys and the
// key file, UAPI request rendering and answer parsing; and how WireguardGo starts its child
// (a stand-in script: the real wireguard-go runs in tests/lab/wireguard_labtest.cc).
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "backends/backend.h"
#include "backends/wireguard/config.h"
#include "backends/wireguard/key.h"
#include "backends/wireguard/uapi.h"
#include "backends/wireguard/wireguard.h"
#include "backends/wireguard/wireguard_go.h"

namespace flannel {
namespace {

std::string config_error(const std::string& json) {
  try {
    decode_wireguard_config(json);
  } catch (const BackendError& e) { return e.what(); }
  return "(no error)";
}

TEST(WireguardConfig, DefaultsAsCurrentFlannel) {
  for (const std::string json : {"", R"({"Type":"wireguard"})"}) {
    WgConfig c = decode_wireguard_config(json);
    EXPECT_EQ(c.listen_port, 51820);
    EXPECT_EQ(c.listen_port_v6, 51821);
    EXPECT_EQ(c.mtu, 0);
    EXPECT_EQ(c.psk, "");
    EXPECT_EQ(c.keepalive_seconds, 0);
    EXPECT_EQ(c.mode, "separate");
    EXPECT_EQ(c.implementation, WgImplementation::kAuto);
  }
}

TEST(WireguardConfig, DecodesEveryField) {
  const std::string psk = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=";
  WgConfig c = decode_wireguard_config(
      R"({"Type":"wireguard","listenport":5000,"ListenPortV6":5001,"MTU":1400,"PSK":")" + psk +
      R"(","PersistentKeepaliveInterval":25,"Mode":"ipv4","Implementation":"userspace"})");
  EXPECT_EQ(c.listen_port, 5000);
  EXPECT_EQ(c.listen_port_v6, 5001);
  EXPECT_EQ(c.mtu, 1400);
  EXPECT_EQ(c.psk, psk);
  EXPECT_EQ(c.keepalive_seconds, 25);
  EXPECT_EQ(c.mode, "ipv4");
  EXPECT_EQ(c.implementation, WgImplementation::kUserspace);
  EXPECT_EQ(decode_wireguard_config(R"({"ListenPort":1,"LISTENPORT":2})").listen_port,
            2);  // last wins
  EXPECT_EQ(decode_wireguard_config(R"({"ListenPort":null})").listen_port, 51820);
  EXPECT_EQ(decode_wireguard_config(R"({"Mode":"auto"})").mode, "auto");
  EXPECT_EQ(decode_wireguard_config(R"({"Implementation":"kernel"})").implementation,
            WgImplementation::kKernel);
}

TEST(WireguardConfig, RejectsBadValuesNamingThem) {
  EXPECT_EQ(config_error(R"({"PersistentKeepaliveInterval":"25s"})"),
            "error decoding backend config: PersistentKeepaliveInterval must be an integer like "
            "25, got \"25s\"");
  EXPECT_EQ(config_error(R"({"ListenPort":0})"),
            "error decoding backend config: ListenPort must be between 1 and 65535, got 0");
  EXPECT_EQ(config_error(R"({"ListenPort":65536})"),
            "error decoding backend config: ListenPort must be between 1 and 65535, got 65536");
  EXPECT_EQ(config_error(R"({"ListenPortV6":-1})"),
            "error decoding backend config: ListenPortV6 must be between 1 and 65535, got -1");
  EXPECT_EQ(config_error(R"({"MTU":"1500"})"),
            "error decoding backend config: MTU must be an integer like 1500, got \"1500\"");
  EXPECT_EQ(
      config_error(R"({"PSK":"short"})"),
      "could not parse psk: \"short\" is not a base64 32-byte key (make one with: wg genpsk)");
  EXPECT_EQ(config_error(R"({"PSK":5})"),
            "error decoding backend config: PSK must be a string, got 5");
  EXPECT_EQ(config_error(R"({"Mode":"IPv4"})"),
            "no valid Mode configured: \"IPv4\" (valid: separate, auto, ipv4, ipv6)");
  EXPECT_EQ(config_error(R"({"Implementation":"go"})"),
            "error decoding backend config: Implementation \"go\" is not valid (valid: auto, "
            "kernel, userspace)");
  EXPECT_EQ(config_error("[1]").rfind("error decoding backend config: expected an object", 0), 0u);
  EXPECT_EQ(config_error("{").rfind("error decoding backend config: ", 0), 0u);
}

TEST(WireguardLeaseCodec, ByteExactAsCurrentFlannel) {
  const std::string key = "Bx3m2bJQ7fsM0k9EoD9fuHLBPPwDXwUaDmlHOvu+d3U=";
  EXPECT_EQ(encode_wg_backend_data({key, 51820}),
            R"({"PublicKey":"Bx3m2bJQ7fsM0k9EoD9fuHLBPPwDXwUaDmlHOvu+d3U=","Port":51820})");
  std::string why;
  auto d = decode_wg_backend_data(
      R"({"PublicKey":"Bx3m2bJQ7fsM0k9EoD9fuHLBPPwDXwUaDmlHOvu+d3U=","Port":5000})", &why);
  ASSERT_TRUE(d) << why;
  EXPECT_EQ(d->public_key, key);
  EXPECT_EQ(d->port, 5000);
  d = decode_wg_backend_data(R"({"publickey":"Bx3m2bJQ7fsM0k9EoD9fuHLBPPwDXwUaDmlHOvu+d3U="})",
                             &why);
  ASSERT_TRUE(d) << why;  // older flannel: no Port
  EXPECT_EQ(d->port, 0);
  EXPECT_FALSE(decode_wg_backend_data(R"({"PublicKey":"nope","Port":1})", &why));
  EXPECT_NE(why.find("no valid PublicKey"), std::string::npos) << why;
  EXPECT_FALSE(decode_wg_backend_data(R"({"Port":1})", &why));
  EXPECT_FALSE(decode_wg_backend_data(
      R"({"PublicKey":"Bx3m2bJQ7fsM0k9EoD9fuHLBPPwDXwUaDmlHOvu+d3U=","Port":70000})", &why));
  EXPECT_FALSE(decode_wg_backend_data("", &why));
}

TEST(WireguardKey, Encodings) {
  WgKey k;
  for (int i = 0; i < 32; ++i) k.bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(i * 7 + 1);
  auto b = WgKey::from_base64(k.base64());
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, k);
  EXPECT_EQ(k.base64().size(), 44u);
  EXPECT_EQ(*WgKey::from_hex(k.hex()), k);
  EXPECT_EQ(WgKey::from_base64(k.base64() + "\n"), k);  // Go skips the newline
  EXPECT_FALSE(WgKey::from_base64(k.base64().substr(1)));
  EXPECT_FALSE(WgKey::from_base64(std::string(43, '!') + "="));
  EXPECT_FALSE(WgKey::from_hex(std::string(64, 'g')));
  EXPECT_EQ(WgKey{}.base64(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
}

TEST(WireguardKey, PublicKeyMatchesRfc7748AndWgPubkey) {
  // RFC 7748 section 6.1: Alice's private and public keys.
  auto priv = WgKey::from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  ASSERT_TRUE(priv);
  EXPECT_EQ(priv->public_key().hex(),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  WgKey gen = WgKey::generate_private();
  EXPECT_EQ(gen.bytes[0] & 7, 0);
  EXPECT_EQ(gen.bytes[31] & 0xc0, 0x40);
  if (::access("/usr/bin/wg", X_OK) == 0) {  // cross-check with wireguard-tools when installed
    std::string cmd = "echo " + gen.base64() + " | /usr/bin/wg pubkey";
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[128] = {};
    ASSERT_NE(std::fgets(buf, sizeof(buf), p), nullptr);
    ::pclose(p);
    EXPECT_EQ(std::string(buf), gen.public_key().base64() + "\n");
  }
}

class KeyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wgkey-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string error_of(const std::string& path) {
    try {
      load_or_create_private_key(path);
    } catch (const BackendError& e) { return e.what(); }
    return "(no error)";
  }
  std::string dir_;
};

TEST_F(KeyFile, MissingIsCreatedWithMode0600AndReused) {
  std::string path = dir_ + "/sub/wgkey";
  bool created = false;
  WgKey k = load_or_create_private_key(path, &created);
  EXPECT_TRUE(created);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, k.base64());  // 44 chars, no newline
  WgKey again = load_or_create_private_key(path, &created);
  EXPECT_FALSE(created);
  EXPECT_EQ(again, k);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_F(KeyFile, AcceptsTrailingNewlineAnd0400) {
  std::string path = dir_ + "/wgkey";
  WgKey k = WgKey::generate_private();
  std::ofstream(path) << k.base64() << "\n";
  ::chmod(path.c_str(), 0400);
  EXPECT_EQ(load_or_create_private_key(path), k);
}

TEST_F(KeyFile, BadPermissionsAndCorruptKeyAreClearErrors) {
  std::string path = dir_ + "/wgkey";
  std::ofstream(path) << WgKey::generate_private().base64();
  ::chmod(path.c_str(), 0644);
  EXPECT_EQ(error_of(path),
            "wireguard key file " + path +
                " has mode 0644: a private key must not be accessible to group or others "
                "(fix: chmod 600 " +
                path + ")");
  ::chmod(path.c_str(), 0600);
  std::ofstream(path, std::ios::trunc) << "not a key";
  std::string e = error_of(path);
  EXPECT_EQ(
      e.rfind("could not parse private key from file " + path + ": expected a standard base64", 0),
      0u)
      << e;
  EXPECT_EQ(error_of(dir_), "wireguard key file " + dir_ + " is not a regular file");
}

// A key file is read only if it is what the agent would have written: no symbolic link (one
// planted in /run/flannel could make the agent use, or overwrite, someone else's file), no other
// owner than root or us.
TEST_F(KeyFile, SymlinksAndForeignOwnersAreRefused) {
  std::string target = dir_ + "/real", path = dir_ + "/wgkey";
  std::ofstream(target) << WgKey::generate_private().base64();
  ::chmod(target.c_str(), 0600);
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
  EXPECT_EQ(error_of(path), "wireguard key file " + path +
                                " is a symbolic link; refusing to follow it (remove it, and the "
                                "agent writes a new key there)");
  ::unlink(path.c_str());
  if (::geteuid() == 0) {  // only root can give a file away
    ASSERT_EQ(::chown(target.c_str(), 12345, 12345), 0);
    EXPECT_EQ(error_of(target).rfind("wireguard key file " + target + " is owned by uid 12345", 0),
              0u)
        << error_of(target);
  }
}

TEST(WireguardKeyFile, PathFromEnvironment) {
  ::unsetenv("WIREGUARD_KEY_FILE");
  EXPECT_EQ(wg_key_file_path(), "/run/flannel/wgkey");
  ::setenv("WIREGUARD_KEY_FILE", "/tmp/x/key", 1);
  EXPECT_EQ(wg_key_file_path(), "/tmp/x/key");
  ::unsetenv("WIREGUARD_KEY_FILE");
}

WgKey key_of(uint8_t b) {
  WgKey k;
  k.bytes.fill(b);
  return k;
}

TEST(WireguardUapi, RendersSetRequests) {
  UapiSet s;
  s.private_key = key_of(1);
  s.listen_port = 51820;
  s.replace_peers = true;
  UapiPeerSet p;
  p.public_key = key_of(2);
  p.preshared_key = key_of(3);
  p.endpoint = "10.250.0.2:51820";
  p.keepalive = 0;
  p.replace_allowed_ips = true;
  p.allowed_ips = {IP4Net::parse("10.5.34.0/24")};
  s.peers.push_back(p);
  UapiPeerSet r;
  r.public_key = key_of(4);
  r.remove = true;
  r.endpoint = "ignored:1";
  s.peers.push_back(r);
  EXPECT_EQ(render_uapi_set(s),
            "set=1\n"
            "private_key=0101010101010101010101010101010101010101010101010101010101010101\n"
            "listen_port=51820\n"
            "replace_peers=true\n"
            "public_key=0202020202020202020202020202020202020202020202020202020202020202\n"
            "preshared_key=0303030303030303030303030303030303030303030303030303030303030303\n"
            "endpoint=10.250.0.2:51820\n"
            "persistent_keepalive_interval=0\n"
            "replace_allowed_ips=true\n"
            "allowed_ip=10.5.34.0/24\n"
            "public_key=0404040404040404040404040404040404040404040404040404040404040404\n"
            "remove=true\n"
            "\n");
  EXPECT_EQ(render_uapi_set({}), "set=1\n\n");
  EXPECT_EQ(render_uapi_get(), "get=1\n\n");
}

TEST(WireguardUapi, ParsesGetAnswers) {
  const std::string answer =
      "private_key=0101010101010101010101010101010101010101010101010101010101010101\n"
      "listen_port=51820\n"
      "fwmark=0\n"
      "public_key=0202020202020202020202020202020202020202020202020202020202020202\n"
      "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
      "protocol_version=1\n"
      "endpoint=10.250.0.2:51820\n"
      "last_handshake_time_sec=1700000000\n"
      "last_handshake_time_nsec=500\n"
      "tx_bytes=1234\n"
      "rx_bytes=5678\n"
      "persistent_keepalive_interval=25\n"
      "allowed_ip=10.5.34.0/24\n"
      "allowed_ip=fd00::/64\n"
      "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
      "preshared_key=0404040404040404040404040404040404040404040404040404040404040404\n"
      "errno=0\n"
      "\n";
  UapiDevice d = parse_uapi_get(answer);
  EXPECT_EQ(d.private_key, key_of(1));
  EXPECT_EQ(d.listen_port, 51820);
  ASSERT_EQ(d.peers.size(), 2u);
  EXPECT_EQ(d.peers[0].public_key, key_of(2));
  EXPECT_FALSE(d.peers[0].has_preshared_key);
  EXPECT_EQ(d.peers[0].endpoint, "10.250.0.2:51820");
  EXPECT_EQ(d.peers[0].last_handshake_sec, 1700000000);
  EXPECT_EQ(d.peers[0].last_handshake_nsec, 500);
  EXPECT_EQ(d.peers[0].tx_bytes, 1234u);
  EXPECT_EQ(d.peers[0].rx_bytes, 5678u);
  EXPECT_EQ(d.peers[0].keepalive, 25);
  EXPECT_EQ(d.peers[0].allowed_ips, std::vector<IP4Net>{IP4Net::parse("10.5.34.0/24")});
  EXPECT_EQ(d.peers[0].allowed_ips_v6, std::vector<std::string>{"fd00::/64"});
  EXPECT_TRUE(d.peers[1].has_preshared_key);
  EXPECT_EQ(d.peers[1].preshared_key, key_of(4));
  EXPECT_EQ(d.peers[1].endpoint, "");

  EXPECT_TRUE(parse_uapi_get("errno=0\n\n").peers.empty());
}

TEST(WireguardUapi, ErrnoAnswersAndMalformedOnesAreErrors) {
  EXPECT_NO_THROW(check_uapi_errno("errno=0\n\n", "set"));
  try {
    check_uapi_errno("errno=22\n\n", "UAPI set on /var/run/wireguard/flannel-wg.sock");
    ADD_FAILURE() << "errno=22 accepted";
  } catch (const UapiError& e) {
    EXPECT_EQ(e.error_number(), 22);
    EXPECT_EQ(std::string(e.what()),
              "UAPI set on /var/run/wireguard/flannel-wg.sock: the device answered errno=22 "
              "(Invalid argument)");
  }
  EXPECT_THROW(check_uapi_errno("", "set"), UapiError);
  EXPECT_THROW(check_uapi_errno("errno=x\n\n", "set"), UapiError);
  EXPECT_THROW(parse_uapi_get("listen_port=1\nerrno=1\n\n"), UapiError);
  EXPECT_THROW(parse_uapi_get("public_key=zz\nerrno=0\n\n"), UapiError);
  EXPECT_THROW(parse_uapi_get("garbage\nerrno=0\n\n"), UapiError);
  EXPECT_THROW(
      parse_uapi_get("public_key=0202020202020202020202020202020202020202020202020202020202020202\n"
                     "allowed_ip=10.5.999.0/24\nerrno=0\n\n"),
      UapiError);
}

TEST(WireguardMetrics, RendersPerPeerFigures) {
  WgPeerStats s;
  s.public_key = "K=";
  s.subnet = IP4Net::parse("10.5.34.0/24");
  s.handshake_age_seconds = 1.5;
  s.rx_bytes = 10;
  s.tx_bytes = 20;
  WgPeerStats never = s;
  never.handshake_age_seconds.reset();
  std::string text = render_wireguard_metrics({s, never}, 2);
  EXPECT_NE(text.find("flannel_wireguard_peer_last_handshake_age_seconds{peer=\"10.5.34.0/"
                      "24\",public_key=\"K=\"} 1.500\n"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("flannel_wireguard_peer_rx_bytes{peer=\"10.5.34.0/24\",public_key=\"K=\"} 10\n"),
      std::string::npos);
  EXPECT_NE(
      text.find("flannel_wireguard_peer_tx_bytes{peer=\"10.5.34.0/24\",public_key=\"K=\"} 20\n"),
      std::string::npos);
  EXPECT_NE(text.find("flannel_wireguard_device_restarts_total 2\n"), std::string::npos);
  size_t first = text.find("last_handshake_age_seconds{");
  EXPECT_EQ(text.find("last_handshake_age_seconds{", first + 1),
            std::string::npos);  // none for "never"
}

// Leases the backend must not configure are skipped with a line naming them, before any device
// I/O (so this needs no device: nothing is sent when every lease is skipped).
TEST(WireguardBackend, SkipsLeasesWithoutValidKeyOrOfAnotherType) {
  WireguardBackend b;
  std::vector<std::string> notes;
  b.set_notify([&](const std::string& l) { notes.push_back(l); });
  Lease bad;
  bad.subnet = IP4Net::parse("10.5.34.0/24");
  bad.attrs.public_ip = IP4::parse("10.250.0.2");
  bad.attrs.backend_type = "wireguard";
  bad.attrs.backend_data = R"({"PublicKey":"not-a-key","Port":51820})";
  Lease other = bad;
  other.subnet = IP4Net::parse("10.5.35.0/24");
  other.attrs.backend_type = "vxlan";
  other.attrs.backend_data = R"({"VtepMAC":"82:4b:b6:2f:54:4e"})";
  EXPECT_NO_THROW(b.apply({{PeerEvent::Type::kAdded, bad},
                           {PeerEvent::Type::kAdded, other},
                           {PeerEvent::Type::kRemoved, other}}));
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0],
            "wireguard: skipping peer 10.5.34.0/24: BackendData has no valid PublicKey (a base64 "
            "32-byte key): {\"PublicKey\":\"not-a-key\",\"Port\":51820}");
  EXPECT_EQ(notes[1], "Ignoring non-wireguard subnet 10.5.35.0/24: type=vxlan");
}

TEST(WireguardBackend, Registered) {
  auto b = make_backend("WireGuard");
  EXPECT_EQ(b->type(), "wireguard");
  EXPECT_TRUE(b->wants_peers());
}

// WireguardGo's child, in a temp dir as KeyFile's.
class WireguardGoChild : public KeyFile {};

// A stand-in for wireguard-go that records its argv, stdin and environment, then exits 3 without
// opening the UAPI socket. Our stdin is a pipe meanwhile, so an inherited stdin would show.
TEST_F(WireguardGoChild, StartsWithDevNullStdinAndItsEnvironment) {
  std::string fake = dir_ + "/wireguard-go";
  std::ofstream(fake) << "#!/bin/sh\n{ echo \"$*\"; readlink /proc/self/fd/0; env | sort; } > " +
                             dir_ + "/seen\nexit 3\n";
  ::chmod(fake.c_str(), 0755);
  ::setenv("LOG_LEVEL", "debug", 1);
  int saved_stdin = ::dup(0), pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::dup2(pipe_fds[0], 0);
  WireguardGo wg("flannel-test-wg", fake);
  std::string error = "(no error)";
  try {
    wg.start();
  } catch (const BackendError& e) { error = e.what(); }
  ::dup2(saved_stdin, 0);
  for (int fd : {saved_stdin, pipe_fds[0], pipe_fds[1]}) ::close(fd);
  ::unsetenv("LOG_LEVEL");
  EXPECT_EQ(error, "wireguard: " + fake +
                       " -f flannel-test-wg exited with status 3 before its UAPI socket "
                       "/var/run/wireguard/flannel-test-wg.sock appeared (its output is in this "
                       "log; is /dev/net/tun available?)");
  EXPECT_EQ(wg.pid(), -1);
  std::ifstream seen(dir_ + "/seen");
  std::string args, stdin_target, env((std::istreambuf_iterator<char>(seen)), {});
  std::istringstream lines(env);
  std::getline(lines, args);
  std::getline(lines, stdin_target);
  EXPECT_EQ(args, "-f flannel-test-wg");
  EXPECT_EQ(stdin_target, "/dev/null");
  for (const char* var : {"\nWG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1\n",
                          "\nLOG_LEVEL=error\n", "\nWG_PROCESS_FOREGROUND=1\n"})
    EXPECT_NE(env.find(var), std::string::npos) << var << " not in\n" << env;
  EXPECT_EQ(env.find("LOG_LEVEL=debug"), std::string::npos) << env;
}

TEST_F(WireguardGoChild, AMissingBinaryIsAClearError) {
  WireguardGo wg("flannel-test-wg", "/nonexistent/flannel-test/wireguard-go");
  try {
    wg.start();
    FAIL() << "expected BackendError";
  } catch (const BackendError& e) {
    EXPECT_STREQ(e.what(),
                 "wireguard: cannot execute /nonexistent/flannel-test/wireguard-go: No such file "
                 "or directory (install Debian's wireguard-go: apt-get install wireguard-go)");
  }
  WireguardGo by_name("flannel-test-wg", "flannel-test-no-such-wireguard-go");
  try {
    by_name.start();
    FAIL() << "expected BackendError";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find("wireguard: flannel-test-no-such-wireguard-go: not found "
                                         "in PATH ("),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace flannel
