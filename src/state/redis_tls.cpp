#include "state/redis_link.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace certgate::state {
namespace {

using Clock = std::chrono::steady_clock;

// A reply larger than this is no answer to our commands (they return a few bytes): the peer is
// not the Redis we meant, and the connection is dropped rather than buffering without end.
constexpr std::size_t kMaxReplyBytes = 1 << 20;

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return errno ? std::strerror(errno) : "connection closed";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

bool is_ip(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

// Waits until fd is ready for `events` or the deadline passes.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

int connect_tcp(const config::StateSettings& s, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(s.port);
  const std::string where = "cannot connect to Redis at " + s.host + ":" + port + ": ";
  if (const int rc = ::getaddrinfo(s.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    error = where + gai_strerror(rc);
    return -1;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(s.timeout_ms);
  std::string last = "no address";
  int fd = -1;
  for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = std::strerror(errno);
      continue;
    }
    int err = 0;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        err = ETIMEDOUT;
        if (wait_fd(fd, POLLOUT, deadline)) {
          socklen_t len = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        }
      }
    }
    if (err != 0) {
      last = err == ETIMEDOUT ? "Connection timed out" : std::strerror(err);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    error = where + last;
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

class TlsLink final : public RedisLink {
 public:
  TlsLink(int fd, SSL* ssl, std::uint32_t timeout_ms, std::string where)
      : fd_(fd), ssl_(ssl), timeout_(timeout_ms), where_(std::move(where)), reader_(redisReaderCreate()) {}
  ~TlsLink() override {
    if (reader_) redisReaderFree(reader_);
    SSL_free(ssl_);
    ::close(fd_);
  }

  // false with `error` set when the handshake fails or the peer is not verified.
  bool handshake(std::string& error) {
    if (!reader_) {
      error = "out of memory";
      return false;
    }
    const auto deadline = Clock::now() + timeout_;
    if (io(deadline, [this] { return SSL_connect(ssl_); }, error)) return true;
    // A verification failure is named by its reason (unknown issuer, name mismatch, expired...),
    // which is what an operator needs to fix ca_file or the URL's host.
    if (const long v = SSL_get_verify_result(ssl_); v != X509_V_OK)
      error = std::string("certificate verify failed: ") + X509_verify_cert_error_string(v);
    error = "TLS handshake with Redis at " + where_ + " failed: " + error;
    return false;
  }

  ReplyPtr command(const std::vector<std::string_view>& argv, std::string& error) override {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    ptrs.reserve(argv.size());
    lens.reserve(argv.size());
    for (auto a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    char* out = nullptr;
    const int n = redisFormatCommandArgv(&out, static_cast<int>(argv.size()), ptrs.data(), lens.data());
    if (n < 0) {
      error = "out of memory";
      return nullptr;
    }
    const auto deadline = Clock::now() + timeout_;
    std::size_t sent = 0;
    bool ok = true;
    while (ok && sent < static_cast<std::size_t>(n)) {
      ok = io(deadline, [&] {
        const int w = SSL_write(ssl_, out + sent, n - static_cast<int>(sent));
        if (w > 0) sent += static_cast<std::size_t>(w);
        return w;
      }, error);
    }
    OPENSSL_cleanse(out, static_cast<std::size_t>(n));  // AUTH carries the password
    redisFreeCommand(out);
    if (!ok) {
      error = "Redis connection failed: " + error;
      return nullptr;
    }
    std::size_t received = 0;
    for (;;) {
      void* reply = nullptr;
      if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
        error = std::string("Redis connection failed: unreadable reply: ") + reader_->errstr;
        return nullptr;
      }
      if (reply) return ReplyPtr(static_cast<redisReply*>(reply));
      if (received > kMaxReplyBytes) {
        error = "Redis connection failed: a reply of more than " + std::to_string(kMaxReplyBytes) + " bytes";
        return nullptr;
      }
      char buf[16384];
      int got = 0;
      if (!io(deadline, [&] { return got = SSL_read(ssl_, buf, sizeof buf); }, error)) {
        error = "Redis connection failed: " + error;
        return nullptr;
      }
      received += static_cast<std::size_t>(got);
      if (redisReaderFeed(reader_, buf, static_cast<size_t>(got)) != REDIS_OK) {
        error = "Redis connection failed: out of memory";
        return nullptr;
      }
    }
  }

 private:
  // Runs one OpenSSL call on the non-blocking socket until it succeeds, fails or the deadline
  // passes; `error` names why.
  template <class F>
  bool io(Clock::time_point deadline, F&& call, std::string& error) {
    for (;;) {
      ERR_clear_error();
      errno = 0;
      const int rc = call();
      if (rc > 0) return true;
      switch (SSL_get_error(ssl_, rc)) {
        case SSL_ERROR_WANT_READ:
          if (wait_fd(fd_, POLLIN, deadline)) continue;
          error = "timed out";
          return false;
        case SSL_ERROR_WANT_WRITE:
          if (wait_fd(fd_, POLLOUT, deadline)) continue;
          error = "timed out";
          return false;
        case SSL_ERROR_ZERO_RETURN:
          error = "Redis closed the connection";
          return false;
        default:
          error = openssl_error();
          return false;
      }
    }
  }

  int fd_;
  SSL* ssl_;
  std::chrono::milliseconds timeout_;
  std::string where_;
  redisReader* reader_;
};

}  // namespace

SslCtxPtr make_redis_tls_context(const config::StateSettings& s) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) throw std::runtime_error("server.state: cannot create a TLS context: " + openssl_error());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (!s.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), s.ca_file.c_str(), nullptr) != 1)
      throw std::runtime_error("server.state.ca_file: cannot load " + s.ca_file.string() + ": " + openssl_error());
  } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    throw std::runtime_error("server.state: cannot load the system's CA store: " + openssl_error());
  }
  if (!s.client_certificate.empty()) {
    const std::filesystem::path key = s.client_key.empty() ? s.client_certificate : s.client_key;
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), s.client_certificate.c_str()) != 1)
      throw std::runtime_error("server.state.client_certificate: cannot load " + s.client_certificate.string() + ": " +
                               openssl_error());
    // Also refuses a key that is not the certificate's ("key values mismatch").
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1)
      throw std::runtime_error("server.state.client_key: cannot load " + key.string() + ": " + openssl_error());
  }
  return ctx;
}

std::unique_ptr<RedisLink> connect_tls(const config::StateSettings& s, SSL_CTX* ctx, std::string& error) {
  const int fd = connect_tcp(s, error);
  if (fd < 0) return nullptr;
  SSL* ssl = SSL_new(ctx);
  if (!ssl) {
    ::close(fd);
    error = "out of memory";
    return nullptr;
  }
  auto link = std::make_unique<TlsLink>(fd, ssl, s.timeout_ms, s.host + ":" + std::to_string(s.port));
  SSL_set_fd(ssl, fd);
  // The URL's host is what the certificate must name: an address is checked against the IP
  // SANs, a name against the DNS SANs (and sent as SNI).
  const bool named = is_ip(s.host) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), s.host.c_str()) == 1
                                   : SSL_set_tlsext_host_name(ssl, s.host.c_str()) == 1 && SSL_set1_host(ssl, s.host.c_str()) == 1;
  if (!named) {
    error = "TLS to Redis at " + s.host + ": cannot set the expected host name";
    return nullptr;
  }
  if (!link->handshake(error)) return nullptr;
  return link;
}

}  // namespace certgate::state
