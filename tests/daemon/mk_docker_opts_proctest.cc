// mk-docker-opts.sh, the built program, against the outputs flannel v0.11's shell script gives
// (the seeds and the fact sheet §5.2), byte for byte, with exit codes and stderr.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;

const std::string kProgram = std::string(FLANNEL_BIN_DIR) + "/mk-docker-opts.sh";

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
}

class MkDockerOptsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "flannel-mkdo-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    env_file_ = dir_ / "subnet.env";
    out_file_ = dir_ / "docker";
    ASSERT_TRUE(fs::exists(kProgram)) << kProgram << " is not built";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Runs the program with exactly `env` as its environment (nothing inherited).
  Result run(const std::vector<std::string>& args,
             const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> argv_s{kProgram};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);

    const std::string out_path = (dir_ / ".stdout").string();
    const std::string err_path = (dir_ / ".stderr").string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    pid_t pid = -1;
    Result r;
    int rc = posix_spawn(&pid, kProgram.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      ADD_FAILURE() << "cannot start " << kProgram << ": " << std::strerror(rc);
      return r;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(out_path);
    r.err = read_file(err_path);
    return r;
  }

  std::vector<std::string> io_args() {
    return {"-f", env_file_.string(), "-d", out_file_.string()};
  }

  fs::path dir_, env_file_, out_file_;
};

// /run/flannel/subnet.env of seed 001 (node1, -k DOCKER_NETWORK_OPTIONS -d /run/flannel/docker).
constexpr char kSeed001Env[] =
    "FLANNEL_NETWORK=172.33.0.0/16\n"
    "FLANNEL_SUBNET=172.33.68.1/24\n"
    "FLANNEL_MTU=1500\n"
    "FLANNEL_IPMASQ=false\n";

// The fact sheet's sample subnet.env.
constexpr char kSampleEnv[] =
    "FLANNEL_NETWORK=10.1.0.0/16\n"
    "FLANNEL_SUBNET=10.1.74.1/24\n"
    "FLANNEL_MTU=1472\n"
    "FLANNEL_IPMASQ=false\n";

TEST_F(MkDockerOptsTest, Seed001DockerNetworkOptions) {
  write_file(env_file_, kSeed001Env);
  auto args = io_args();
  args.insert(args.begin(), {"-k", "DOCKER_NETWORK_OPTIONS"});
  Result r = run(args);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPT_BIP=\"--bip=172.33.68.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1500\"\n"
            "DOCKER_NETWORK_OPTIONS=\" --bip=172.33.68.1/24 --ip-masq=true --mtu=1500\"\n");
}

TEST_F(MkDockerOptsTest, Seed003DockerNetworkOptions) {
  write_file(env_file_,
             "FLANNEL_NETWORK=172.17.0.0/16\nFLANNEL_SUBNET=172.17.41.1/24\nFLANNEL_MTU=1472\n"
             "FLANNEL_IPMASQ=false\n");
  Result r =
      run({"-k", "DOCKER_NETWORK_OPTIONS", "-d", out_file_.string(), "-f", env_file_.string()});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPT_BIP=\"--bip=172.17.41.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1472\"\n"
            "DOCKER_NETWORK_OPTIONS=\" --bip=172.17.41.1/24 --ip-masq=true --mtu=1472\"\n");
}

TEST_F(MkDockerOptsTest, NoOptionsWritesBothWithDockerOpts) {
  write_file(env_file_, kSampleEnv);
  Result r = run(io_args());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPT_BIP=\"--bip=10.1.74.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1472\"\n"
            "DOCKER_OPTS=\" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472\"\n");
}

TEST_F(MkDockerOptsTest, Seed004IndividualOnly) {
  write_file(env_file_,
             "FLANNEL_NETWORK=172.30.0.0/16\nFLANNEL_SUBNET=172.30.46.1/24\nFLANNEL_MTU=1450\n"
             "FLANNEL_IPMASQ=false\n");
  auto args = io_args();
  args.push_back("-i");
  Result r = run(args);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPT_BIP=\"--bip=172.30.46.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1450\"\n");
}

TEST_F(MkDockerOptsTest, CombinedOnly) {
  write_file(env_file_, kSampleEnv);
  auto args = io_args();
  args.push_back("-c");
  Result r = run(args);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPTS=\" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472\"\n");
}

TEST_F(MkDockerOptsTest, ClusteredAndAttachedOptions) {
  write_file(env_file_, kSampleEnv);
  Result r = run({"-ic", "-kOPTS", "-f" + env_file_.string(), "-d", out_file_.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPT_BIP=\"--bip=10.1.74.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1472\"\n"
            "OPTS=\" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472\"\n");
}

TEST_F(MkDockerOptsTest, OmitIpMasq) {
  write_file(env_file_, kSampleEnv);
  auto args = io_args();
  args.push_back("-m");
  Result r = run(args);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPT_BIP=\"--bip=10.1.74.1/24\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1472\"\n"
            "DOCKER_OPTS=\" --bip=10.1.74.1/24 --mtu=1472\"\n");
}

TEST_F(MkDockerOptsTest, IpMasqTrueIsInverted) {
  write_file(env_file_,
             "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.74.1/24\nFLANNEL_MTU=1472\n"
             "FLANNEL_IPMASQ=true\n");
  Result r = run(io_args());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPT_BIP=\"--bip=10.1.74.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=false\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1472\"\n"
            "DOCKER_OPTS=\" --bip=10.1.74.1/24 --ip-masq=false --mtu=1472\"\n");
}

TEST_F(MkDockerOptsTest, InvalidIpMasqFailsAndLeavesOutputUntouched) {
  write_file(env_file_,
             "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.74.1/24\nFLANNEL_MTU=1472\n"
             "FLANNEL_IPMASQ=yes\n");
  write_file(out_file_, "PREVIOUS=\"content\"\n");
  Result r = run(io_args());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "Invalid value of FLANNEL_IPMASQ: yes\n");
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(read_file(out_file_), "PREVIOUS=\"content\"\n");
  // No temp file left behind either.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (e.path().filename().string().rfind(".docker", 0) == 0) ++entries;
  }
  EXPECT_EQ(entries, 0);
}

TEST_F(MkDockerOptsTest, InvalidIpMasqDoesNotCreateOutput) {
  write_file(env_file_, "FLANNEL_IPMASQ=maybe\n");
  Result r = run(io_args());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "Invalid value of FLANNEL_IPMASQ: maybe\n");
  EXPECT_FALSE(fs::exists(out_file_));
}

TEST_F(MkDockerOptsTest, InvalidIpMasqIgnoredWithM) {
  write_file(env_file_, "FLANNEL_SUBNET=10.1.74.1/24\nFLANNEL_IPMASQ=maybe\n");
  auto args = io_args();
  args.push_back("-m");
  Result r = run(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPT_BIP=\"--bip=10.1.74.1/24\"\n"
            "DOCKER_OPTS=\" --bip=10.1.74.1/24\"\n");
}

TEST_F(MkDockerOptsTest, MissingEnvFileGivesEmptyDockerOpts) {
  Result r = run({"-f", (dir_ / "absent.env").string(), "-d", out_file_.string()});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(read_file(out_file_), "DOCKER_OPTS=\"\"\n");
}

TEST_F(MkDockerOptsTest, EnvFileWithCommentsAsInSeed002) {
  write_file(env_file_,
             "FLANNEL_NETWORK=172.7.0.0/16\n"
             "FLANNEL_SUBNET=172.7.21.1/24 #The subnet of each node is different\n"
             "FLANNEL_MTU=1500\n"
             "FLANNEL_IPMASQ=false\n");
  Result r = run(io_args());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPT_BIP=\"--bip=172.7.21.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1500\"\n"
            "DOCKER_OPTS=\" --bip=172.7.21.1/24 --ip-masq=true --mtu=1500\"\n");
}

TEST_F(MkDockerOptsTest, EnvironmentDockerOptsAndKeyAreIncluded) {
  write_file(env_file_, kSampleEnv);
  Result r = run(io_args(), {{"DOCKER_OPTS", "--foo"}, {"DOCKER_OPT_ZEXTRA", "--log-level=warn"}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(
      read_file(out_file_),
      "DOCKER_OPT_BIP=\"--bip=10.1.74.1/24\"\n"
      "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
      "DOCKER_OPT_MTU=\"--mtu=1472\"\n"
      "DOCKER_OPT_ZEXTRA=\"--log-level=warn\"\n"
      "DOCKER_OPTS=\"--foo  --bip=10.1.74.1/24 --ip-masq=true --mtu=1472 --log-level=warn\"\n");
}

TEST_F(MkDockerOptsTest, EmptyKeyInEnvironmentAddsNothing) {
  // systemd's EnvironmentFile=-/etc/sysconfig/docker-network sets DOCKER_NETWORK_OPTIONS= (empty).
  write_file(env_file_, kSeed001Env);
  auto args = io_args();
  args.insert(args.begin(), {"-k", "DOCKER_NETWORK_OPTIONS"});
  Result r = run(args, {{"DOCKER_NETWORK_OPTIONS", ""}});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPT_BIP=\"--bip=172.33.68.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1500\"\n"
            "DOCKER_NETWORK_OPTIONS=\" --bip=172.33.68.1/24 --ip-masq=true --mtu=1500\"\n");
}

TEST_F(MkDockerOptsTest, ReplacesLongerOutputAndKeepsPermissions) {
  write_file(env_file_, kSampleEnv);
  write_file(out_file_, std::string(4096, 'x') + "\n");
  ASSERT_EQ(::chmod(out_file_.c_str(), 0600), 0);
  auto args = io_args();
  args.push_back("-c");
  Result r = run(args);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPTS=\" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472\"\n");
  struct stat st;
  ASSERT_EQ(::stat(out_file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(MkDockerOptsTest, WritesThroughASymlink) {
  write_file(env_file_, kSampleEnv);
  const fs::path real = dir_ / "real.env";
  write_file(real, "old\n");
  fs::create_symlink(real, out_file_);
  auto args = io_args();
  args.push_back("-c");
  Result r = run(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::is_symlink(out_file_));
  EXPECT_EQ(read_file(real), "DOCKER_OPTS=\" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472\"\n");
}

TEST_F(MkDockerOptsTest, HelpAndQuestionMarkPrintUsageAndExitOne) {
  for (const char* opt : {"-h", "-?"}) {
    Result r = run({opt, "-d", out_file_.string()});
    EXPECT_EQ(r.exit_code, 1) << opt;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind(kProgram + " [-f FLANNEL-ENV-FILE] [-d DOCKER-ENV-FILE] [-i] [-c] [-m] "
                                     "[-k COMBINED-KEY]\n",
                          0),
              0u)
        << r.err;
    EXPECT_NE(r.err.find("Generate Docker daemon options based on flannel env file\n"),
              std::string::npos);
    EXPECT_FALSE(fs::exists(out_file_));
  }
}

TEST_F(MkDockerOptsTest, BadOptionsExitOne) {
  Result unknown = run({"-x", "-d", out_file_.string()});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.err.rfind(kProgram + ": Illegal option -x\n", 0), 0u) << unknown.err;
  Result missing = run({"-d"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err.rfind(kProgram + ": No arg for -d option\n", 0), 0u) << missing.err;
  EXPECT_FALSE(fs::exists(out_file_));
}

TEST_F(MkDockerOptsTest, ParsingStopsAtFirstOperand) {
  write_file(env_file_, kSampleEnv);
  auto args = io_args();
  args.push_back("extra");
  args.push_back("-i");  // after an operand: not an option, as with getopts
  Result r = run(args);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(read_file(out_file_),
            "DOCKER_OPT_BIP=\"--bip=10.1.74.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1472\"\n"
            "DOCKER_OPTS=\" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472\"\n");
}

TEST_F(MkDockerOptsTest, MalformedEnvFileFailsWithoutWriting) {
  write_file(env_file_, "FLANNEL_SUBNET=\"10.1.74.1/24\n");  // unterminated quote
  Result r = run(io_args());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind(kProgram + ": cannot parse " + env_file_.string() + ": ", 0), 0u) << r.err;
  EXPECT_FALSE(fs::exists(out_file_));
}

TEST_F(MkDockerOptsTest, WritesToNonRegularFileInPlace) {
  // -d /dev/stdout or a FIFO works with the script's redirection; such a target must be written
  // in place, not replaced by a rename.
  write_file(env_file_, kSampleEnv);
  const fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string received;
  std::thread reader([&] {
    int fd = ::open(fifo.c_str(), O_RDONLY);
    if (fd < 0) return;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) received.append(buf, static_cast<size_t>(n));
    ::close(fd);
  });
  Result r = run({"-c", "-f", env_file_.string(), "-d", fifo.string()});
  // If the program never opened the FIFO, release the reader blocked in open().
  int unblock = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
  if (unblock >= 0) ::close(unblock);
  reader.join();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(received, "DOCKER_OPTS=\" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472\"\n");
  struct stat st;
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

}  // namespace
