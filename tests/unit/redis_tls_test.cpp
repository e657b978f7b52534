// rediss:// against a real redis-server started here with TLS, on certificates made here by a
// test CA: single use across two stores, the server's certificate verified against ca_file (or
// the system store), the URL's host checked, client certificates for tls-auth-clients, and every
// failure "unavailable" with its reason -- never success, never plaintext.
#include "state/store.hpp"

#include "test_util.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <future>
#include <thread>

namespace certgate::state {
namespace {

using namespace std::chrono_literals;

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

// A test CA, a second CA nobody trusts, a Redis server certificate naming only DNS:localhost, and
// a client certificate: made once for the whole suite.
struct Pki {
  test::TempDir dir;
  std::string path(const char* f) const { return (dir.path() / f).string(); }
  Pki() {
    const std::string d = dir.path().string();
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    const std::string script =
        "set -e; cd '" + d + "'; exec 2>openssl.log; "
        "openssl req -x509" + ec + "-keyout ca.key -out ca.pem -subj '/CN=certgate test Redis CA' -days 2; "
        "openssl req -x509" + ec + "-keyout other.key -out other-ca.pem -subj '/CN=someone else CA' -days 2; "
        "printf 'subjectAltName=DNS:localhost\\n' > server.ext; "
        "openssl req" + ec + "-keyout server.key -out server.csr -subj '/CN=redis'; "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
        "-extfile server.ext; "
        "printf 'extendedKeyUsage=clientAuth\\n' > client.ext; "
        "openssl req" + ec + "-keyout client.key -out client.csr -subj '/CN=certgate'; "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 "
        "-extfile client.ext";
    ok = std::system(("bash -c \"" + script + "\"").c_str()) == 0;
  }
  bool ok = false;
};

const Pki& pki() {
  static Pki p;
  return p;
}

class TlsRedis {
 public:
  explicit TlsRedis(bool auth_clients) : port_(free_port()) {
    const Pki& p = pki();
    const std::string cert = p.path("server.pem"), key = p.path("server.key"), ca = p.path("ca.pem");
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string port = std::to_string(port_);
      ::execlp("redis-server", "redis-server", "--port", "0", "--tls-port", port.c_str(), "--bind", "127.0.0.1",
               "--tls-cert-file", cert.c_str(), "--tls-key-file", key.c_str(), "--tls-ca-cert-file", ca.c_str(),
               "--tls-auth-clients", auth_clients ? "yes" : "no", "--save", "", "--appendonly", "no", "--loglevel",
               "warning", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 200 && !port_open(port_); ++i) std::this_thread::sleep_for(20ms);
  }
  ~TlsRedis() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  int port() const { return port_; }
  bool up() const { return port_open(port_); }

 private:
  int port_;
  pid_t pid_ = -1;
};

config::StateSettings rediss(int port, const std::string& host = "localhost") {
  config::StateSettings s;
  s.backend = config::StateBackend::Redis;
  s.tls = true;
  s.host = host;
  s.port = port;
  s.timeout_ms = 2000;
  s.ca_file = pki().path("ca.pem");
  return s;
}

// The answers come back posted to this io_context; run it until the one answer arrived.
Result call(const std::function<void(boost::asio::any_io_executor, Handler)>& f) {
  boost::asio::io_context io;
  std::optional<Result> r;
  f(io.get_executor(), [&](Result x) { r = std::move(x); });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!r && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(10ms);
  }
  if (!r) {
    ADD_FAILURE() << "no answer";
    return {};
  }
  return *r;
}

Result issue(Store& s, const std::string& key) {
  return call([&](auto ex, auto done) { s.issue("token", key, "site-a|1", 60s, ex, done); });
}
Result consume(Store& s, const std::string& key) {
  return call([&](auto ex, auto done) { s.consume("token", key, ex, done); });
}

class RedisTls : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(pki().ok) << "openssl could not make the test certificates"; }
  runtime::ManualClock clock;
};

TEST_F(RedisTls, SingleUseAcrossTwoStores) {
  TlsRedis redis(false);
  ASSERT_TRUE(redis.up()) << "redis-server did not start with TLS";
  auto a = make_store(rediss(redis.port()), clock);
  auto b = make_store(rediss(redis.port()), clock);
  Result r = issue(*a, "n1");
  ASSERT_EQ(r.status, Status::Done) << r.error;
  EXPECT_EQ(issue(*b, "n1").status, Status::Unavailable) << "an existing key is never overwritten";
  r = consume(*b, "n1");
  EXPECT_EQ(r.status, Status::Done) << r.error;
  EXPECT_EQ(r.value, "site-a|1");
  EXPECT_EQ(consume(*a, "n1").status, Status::AlreadyUsed);
  EXPECT_EQ(consume(*a, "never").status, Status::Unknown);
}

TEST_F(RedisTls, WrongCaIsUnavailableNamingTheReason) {
  TlsRedis redis(false);
  ASSERT_TRUE(redis.up());
  auto s = rediss(redis.port());
  s.ca_file = pki().path("other-ca.pem");
  Result r = issue(*make_store(s, clock), "k");
  EXPECT_EQ(r.status, Status::Unavailable);
  // Redis sends its CA along: the reason names the chain's untrusted, self-signed root.
  EXPECT_NE(r.error.find("certificate verify failed: self-signed certificate in certificate chain"), std::string::npos)
      << r.error;
}

TEST_F(RedisTls, SystemStoreByDefaultDoesNotTrustTheTestCa) {
  TlsRedis redis(false);
  ASSERT_TRUE(redis.up());
  auto s = rediss(redis.port());
  s.ca_file.clear();
  Result r = consume(*make_store(s, clock), "k");
  EXPECT_EQ(r.status, Status::Unavailable);
  EXPECT_NE(r.error.find("certificate verify failed"), std::string::npos) << r.error;
}

TEST_F(RedisTls, HostNotNamedByTheCertificateIsUnavailable) {
  TlsRedis redis(false);
  ASSERT_TRUE(redis.up());
  // Same server, same trusted CA: only the URL's host differs from the certificate's DNS:localhost.
  Result r = consume(*make_store(rediss(redis.port(), "127.0.0.1"), clock), "k");
  EXPECT_EQ(r.status, Status::Unavailable);
  EXPECT_NE(r.error.find("certificate verify failed: IP address mismatch"), std::string::npos) << r.error;
}

TEST_F(RedisTls, ClientCertificateWhenRedisAsksForOne) {
  TlsRedis redis(true);
  ASSERT_TRUE(redis.up());
  Result r = issue(*make_store(rediss(redis.port()), clock), "without");
  EXPECT_EQ(r.status, Status::Unavailable) << "Redis with tls-auth-clients yes refuses a client without certificate";
  EXPECT_FALSE(r.error.empty());
  auto s = rediss(redis.port());
  s.client_certificate = pki().path("client.pem");
  s.client_key = pki().path("client.key");
  auto store = make_store(s, clock);
  r = issue(*store, "with");
  ASSERT_EQ(r.status, Status::Done) << r.error;
  EXPECT_EQ(consume(*store, "with").status, Status::Done);
}

TEST_F(RedisTls, PlaintextRedisIsNeverSpokenTo) {
  const int port = free_port();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string p = std::to_string(port);
    ::execlp("redis-server", "redis-server", "--port", p.c_str(), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--loglevel", "warning", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 200 && !port_open(port); ++i) std::this_thread::sleep_for(20ms);
  Result r = issue(*make_store(rediss(port), clock), "k");
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(r.status, Status::Unavailable);
  EXPECT_NE(r.error.find("TLS handshake with Redis at localhost:"), std::string::npos) << r.error;
}

TEST_F(RedisTls, UnloadableClientKeyFailsAtStart) {
  auto s = rediss(free_port());
  s.client_certificate = pki().path("client.pem");
  s.client_key = pki().path("server.key");
  try {
    make_store(s, clock);
    FAIL() << "a client key not matching its certificate was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("key values mismatch"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace certgate::state
