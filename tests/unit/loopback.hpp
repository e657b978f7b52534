#pragma once
// Unit-test peers on real loopback sockets (no mocks): a bound port that refuses every connection,
// or a listening one that serves one canned answer per request.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace certgate::test {

// A loopback socket bound to a free port: listening, it serves one answer; not listening, every
// connection to it is refused (and the port stays ours while the object lives).
class Loopback {
 public:
  explicit Loopback(bool listen) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), len), 0);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin_port);
    if (listen) EXPECT_EQ(::listen(fd_, 4), 0);
  }
  ~Loopback() {
    if (server_.joinable()) server_.join();
    ::close(fd_);
  }
  std::string port() const { return std::to_string(port_); }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  // Answers the next request with `body` (200), then closes.
  void serve_once(const std::string& body) {
    serve_raw("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
              body);
  }
  // Answers the next request with `answer` as it is, then closes.
  void serve_raw(std::string answer) {
    if (server_.joinable()) server_.join();
    server_ = std::thread([this, answer = std::move(answer)] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      (void)::recv(c, buf, sizeof buf, 0);
      (void)::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }

 private:
  int fd_;
  int port_ = 0;
  std::thread server_;
};

}  // namespace certgate::test
