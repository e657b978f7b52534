// The single-use store against a real redis-server (started here on a free loopback port) and
// in memory: one consume wins, a second is told apart from an unknown key, Redis down is
// "unavailable" (never success), and the queue is bounded.
#include "state/store.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

namespace certgate::state {
namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), len);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool port_open(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

class RedisServer {
 public:
  RedisServer() : port_(free_port()) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string port = std::to_string(port_);
      ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--loglevel", "warning", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 200 && !port_open(port_); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ~RedisServer() { stop(); }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  int port() const { return port_; }
  bool up() const { return port_open(port_); }

 private:
  int port_;
  pid_t pid_ = -1;
};

// Runs one call on a loop thread and waits for its answer (delivered on that loop).
class Loop {
 public:
  Loop() : guard_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~Loop() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  template <class F>
  Result call(F&& f) {
    std::promise<Result> p;
    auto fut = p.get_future();
    std::atomic<std::thread::id> on;
    f(io_.get_executor(), [&](Result r) {
      on = std::this_thread::get_id();
      p.set_value(std::move(r));
    });
    Result r = fut.get();
    EXPECT_EQ(on.load(), thread_.get_id()) << "the answer must come back on the caller's loop";
    return r;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

config::StateSettings redis_settings(int port) {
  config::StateSettings s;
  s.backend = config::StateBackend::Redis;
  s.host = "127.0.0.1";
  s.port = port;
  s.timeout_ms = 500;
  return s;
}

void single_use_contract(Store& store, Loop& loop) {
  using namespace std::chrono_literals;
  auto issue = [&](std::string ns, std::string key, std::string value) {
    return loop.call([&](auto ex, auto done) { store.issue(ns, key, value, 60s, ex, done); });
  };
  auto consume = [&](std::string ns, std::string key) {
    return loop.call([&](auto ex, auto done) { store.consume(ns, key, ex, done); });
  };
  EXPECT_EQ(issue("token", "n1", "site-a|123").status, Status::Done);
  EXPECT_EQ(issue("token", "n1", "again").status, Status::Unavailable) << "an existing key is never overwritten";
  EXPECT_EQ(consume("step-up", "n1").status, Status::Unknown) << "namespaces are apart";
  Result r = consume("token", "n1");
  EXPECT_EQ(r.status, Status::Done);
  EXPECT_EQ(r.value, "site-a|123");
  EXPECT_EQ(consume("token", "n1").status, Status::AlreadyUsed);
  EXPECT_EQ(consume("token", "never").status, Status::Unknown);
  EXPECT_EQ(issue("token", "", "").status, Status::Done);  // any bytes are a key
  EXPECT_EQ(consume("token", "").status, Status::Done);
}

TEST(StateStore, MemoryIsSingleUse) {
  runtime::ManualClock clock;
  config::StateSettings s;
  auto store = make_store(s, clock);
  Loop loop;
  single_use_contract(*store, loop);
}

TEST(StateStore, MemoryForgetsAfterTtlAndIsBounded) {
  using namespace std::chrono_literals;
  runtime::ManualClock clock;
  config::StateSettings s;
  s.max_entries = 16;
  auto store = make_store(s, clock);
  Loop loop;
  auto issue = [&](std::string key) {
    return loop.call([&](auto ex, auto done) { store->issue("t", key, "v", 10s, ex, done); }).status;
  };
  EXPECT_EQ(issue("a"), Status::Done);
  clock.advance(11s);
  EXPECT_EQ(loop.call([&](auto ex, auto done) { store->consume("t", "a", ex, done); }).status, Status::Unknown);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(issue("k" + std::to_string(i)), Status::Done);
    clock.advance(1ms);
  }
  auto consume = [&](std::string key) {
    return loop.call([&](auto ex, auto done) { store->consume("t", key, ex, done); }).status;
  };
  EXPECT_EQ(consume("k1"), Status::Done);
  // Full: a new key pushes out the one nearest its expiry; never a replay of a spent one.
  EXPECT_EQ(issue("one-more"), Status::Done);
  EXPECT_EQ(issue("two-more"), Status::Done);
  EXPECT_EQ(consume("k0"), Status::Unknown);
  EXPECT_NE(consume("k1"), Status::Done);
  EXPECT_EQ(consume("one-more"), Status::Done);
  EXPECT_EQ(consume("k15"), Status::Done);
}

TEST(StateStore, RedisIsSingleUseAcrossInstances) {
  RedisServer redis;
  ASSERT_TRUE(redis.up()) << "redis-server did not start (scripts/install-deps.sh installs it)";
  runtime::ManualClock clock;
  auto a = make_store(redis_settings(redis.port()), clock);
  auto b = make_store(redis_settings(redis.port()), clock);
  Loop loop;
  single_use_contract(*a, loop);
  using namespace std::chrono_literals;
  ASSERT_EQ(loop.call([&](auto ex, auto done) { a->issue("token", "shared", "x", 60s, ex, done); }).status, Status::Done);
  EXPECT_EQ(loop.call([&](auto ex, auto done) { b->consume("token", "shared", ex, done); }).status, Status::Done);
  EXPECT_EQ(loop.call([&](auto ex, auto done) { a->consume("token", "shared", ex, done); }).status, Status::AlreadyUsed);
}

TEST(StateStore, RedisRaceHasOneWinner) {
  RedisServer redis;
  ASSERT_TRUE(redis.up());
  runtime::ManualClock clock;
  auto s = redis_settings(redis.port());
  s.workers = 4;
  auto store = make_store(s, clock);
  Loop loop;
  using namespace std::chrono_literals;
  ASSERT_EQ(loop.call([&](auto ex, auto done) { store->issue("token", "race", "x", 60s, ex, done); }).status, Status::Done);
  std::vector<std::future<Result>> answers;
  std::vector<std::unique_ptr<std::promise<Result>>> promises;
  boost::asio::io_context io;
  for (int i = 0; i < 32; ++i) {
    promises.push_back(std::make_unique<std::promise<Result>>());
    answers.push_back(promises.back()->get_future());
    store->consume("token", "race", io.get_executor(), [p = promises.back().get()](Result r) { p->set_value(std::move(r)); });
  }
  // The answers are posted from the workers: wait for all 32 (bounded).
  std::atomic<int> seen{0};
  for (auto& f : answers) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (f.wait_for(0s) != std::future_status::ready && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(10ms);
    }
    ++seen;
  }
  int done = 0, used = 0;
  for (auto& f : answers) {
    ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
    Status st = f.get().status;
    done += st == Status::Done;
    used += st == Status::AlreadyUsed;
  }
  EXPECT_EQ(done, 1);
  EXPECT_EQ(used, 31);
}

TEST(StateStore, RedisDownIsUnavailableNeverSuccess) {
  RedisServer redis;
  ASSERT_TRUE(redis.up());
  runtime::ManualClock clock;
  auto store = make_store(redis_settings(redis.port()), clock);
  Loop loop;
  using namespace std::chrono_literals;
  ASSERT_EQ(loop.call([&](auto ex, auto done) { store->issue("token", "k", "x", 60s, ex, done); }).status, Status::Done);
  redis.stop();
  Result r = loop.call([&](auto ex, auto done) { store->consume("token", "k", ex, done); });
  EXPECT_EQ(r.status, Status::Unavailable);
  EXPECT_FALSE(r.error.empty());
  for (int i = 0; i < 3; ++i) {  // each worker's connection is found broken, then cannot be made again
    r = loop.call([&](auto ex, auto done) { store->issue("token", "k2", "x", 60s, ex, done); });
    EXPECT_EQ(r.status, Status::Unavailable);
  }
  EXPECT_NE(r.error.find("cannot connect"), std::string::npos) << r.error;
}

TEST(StateStore, RedisQueueIsBounded) {
  // Nothing listens: the one worker waits for its connect timeout while the queue fills.
  runtime::ManualClock clock;
  auto s = redis_settings(free_port());
  s.workers = 1;
  s.max_pending = 2;
  auto store = make_store(s, clock);
  boost::asio::io_context io;
  std::atomic<int> unavailable{0}, answered{0};
  for (int i = 0; i < 10; ++i)
    store->consume("t", "k", io.get_executor(), [&](Result r) {
      ++answered;
      unavailable += r.status == Status::Unavailable;
    });
  store.reset();  // joins the worker: every queued job has been answered or dropped
  io.run();
  EXPECT_EQ(unavailable.load(), answered.load());
  EXPECT_GE(answered.load(), 7) << "beyond max_pending the caller is answered at once";
}

}  // namespace
}  // namespace certgate::state

#include "test_util.hpp"

namespace certgate::test {
namespace {

TEST(StateConfig, BadValuesAreErrorsWithTheirPosition) {
  EXPECT_EQ(config_error("[server.state]\nbackend = \"etcd\"\n"),
            "c.toml:2:11: server.state.backend: expected one of \"memory\", \"redis\"; got \"etcd\"");
  EXPECT_EQ(config_error("[server.state]\nbackend = \"redis\"\n"),
            "c.toml:1:1: server.state.url: backend = \"redis\" needs url = \"redis://host:port/db\"");
  EXPECT_EQ(config_error("[server.state]\nbackend = \"redis\"\nurl = \"redis://:pw@127.0.0.1:6379\"\n"),
            "c.toml:3:7: server.state.url: expected redis://host[:port][/db]; got \"redis://:pw@127.0.0.1:6379\"");
  EXPECT_EQ(config_error("[server.state]\nbackend = \"redis\"\nurl = \"redis://u@127.0.0.1:6379\"\n"),
            "c.toml:3:7: server.state.url: put the password in password_file, not in the URL");
  EXPECT_EQ(config_error("[server.state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1\"\nca_file = \"ca.pem\"\n"),
            "c.toml:4:11: server.state.ca_file: only a rediss:// url uses TLS files");
  EXPECT_EQ(config_error("[server.state]\nbackend = \"redis\"\nurl = \"rediss://localhost\"\nca_file = \"/nonexistent.pem\"\n"),
            "c.toml:4:11: server.state.ca_file: cannot read /nonexistent.pem");
  EXPECT_EQ(config_error("[server.state]\nbackend = \"redis\"\nurl = \"rediss://localhost\"\nclient_key = \"/etc/hostname\"\n"),
            "c.toml:4:14: server.state.client_key: needs client_certificate");
  EXPECT_EQ(config_error("[server.state]\nbackend = \"redis\"\nurl = \"https://localhost\"\n"),
            "c.toml:3:7: server.state.url: expected redis://host[:port][/db] or rediss://host[:port][/db]; got \"https://localhost\"");
  EXPECT_EQ(config_error("[server.state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/x\"\n"),
            "c.toml:3:7: server.state.url: the database after '/' must be a number; got \"x\"");
  EXPECT_EQ(config_error("[server.state]\nurl = \"redis://127.0.0.1\"\n"),
            "c.toml:2:7: server.state.url: only the redis backend has a URL");
  EXPECT_EQ(config_error("[server.state]\nworkers = 0\n"), "c.toml:2:11: server.state.workers: must be between 1 and 64");
}

TEST(StateConfig, RedisUrlIsParsed) {
  TempDir dir;
  dir.write("pw", "secret\n");
  auto file = dir.write("c.toml", "[server.state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6380/3\"\npassword_file = \"pw\"\n"
                                   "[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                                   "certificate = \"server.pem\"\n");
  auto cfg = config::load(file);
  EXPECT_EQ(cfg.server.state.host, "127.0.0.1");
  EXPECT_EQ(cfg.server.state.port, 6380);
  EXPECT_EQ(cfg.server.state.database, 3);
  EXPECT_EQ(cfg.server.state.password, "secret");
  EXPECT_FALSE(cfg.server.state.tls);
}

TEST(StateConfig, RedissUrlIsParsedWithItsTlsFiles) {
  TempDir dir;
  dir.write("ca.pem", "x");
  dir.write("client.pem", "x");
  auto file = dir.write("c.toml", "[server.state]\nbackend = \"redis\"\nurl = \"rediss://redis.example:6380/2\"\n"
                                   "ca_file = \"ca.pem\"\nclient_certificate = \"client.pem\"\n"
                                   "[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                                   "certificate = \"server.pem\"\n");
  auto cfg = config::load(file);
  EXPECT_TRUE(cfg.server.state.tls);
  EXPECT_EQ(cfg.server.state.host, "redis.example");
  EXPECT_EQ(cfg.server.state.port, 6380);
  EXPECT_EQ(cfg.server.state.database, 2);
  EXPECT_EQ(cfg.server.state.ca_file, dir.path() / "ca.pem");
  EXPECT_EQ(cfg.server.state.client_certificate, dir.path() / "client.pem");
  EXPECT_TRUE(cfg.server.state.client_key.empty());
}

}  // namespace
}  // namespace certgate::test

namespace certgate::test {
namespace {

std::string token_site(const std::string& token_keys, const std::string& after = "") {
  return "\n[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\ncertificate = \"server.pem\"\n"
         "[sites.client_certificates]\ntrusted_cas = [\"ca.pem\"]\n[sites.token_login]\n" + token_keys + after;
}

TEST(TokenLoginConfig, BadValuesAreErrorsWithTheirPosition) {
  EXPECT_EQ(config_error(token_site("")),
            "c.toml:9:1: sites[0].token_login.cookie_key_file: missing: a file of at least 32 random bytes, the same on "
            "every instance (e.g. head -c 32 /dev/urandom > token.key)");
  EXPECT_NE(config_error(token_site("cookie_key_file = \"/nonexistent/key\"\n")).find("cannot read"), std::string::npos);
  EXPECT_EQ(config_error(token_site("enabled = false\nnonce_lifetime_seconds = 1\n")),
            "c.toml:11:26: sites[0].token_login.nonce_lifetime_seconds: must be between 5 and 3600");
  EXPECT_EQ(config_error(token_site("enabled = false\ncookie_name = \"a;b\"\n")),
            "c.toml:11:15: sites[0].token_login.cookie_name: expected 1-64 letters, digits, '_', '-' or '.'");
  EXPECT_NE(config_error("\n[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                         "certificate = \"server.pem\"\n[[sites.locations]]\npath = \"/app\"\ntoken_login = true\n")
                .find("token_login = true, which needs [sites.token_login]"),
            std::string::npos);
}

TEST(TokenLoginConfig, ShortKeyFileIsRefused) {
  TempDir dir;
  dir.write("short.key", "0123456789");
  auto file = dir.write("c.toml", token_site("cookie_key_file = \"short.key\"\n"));
  try {
    config::load(file);
    FAIL() << "a 10-byte cookie key was accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("must hold 32 to 4096 bytes (it holds 10)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace certgate::test
