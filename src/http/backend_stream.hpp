#pragma once
// A connection to a backend: TCP, TLS over TCP, or a Unix socket, behind one stream type that
// Beast's HTTP reads and writes accept. Idle ones wait in a per-loop pool (no locks: each loop
// only touches its own), bounded per backend.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <variant>

namespace certgate::http {

class BackendStream {
 public:
  using tcp = boost::asio::ip::tcp;
  using unix_socket = boost::asio::local::stream_protocol::socket;
  using tls_stream = boost::asio::ssl::stream<tcp::socket>;
  using executor_type = boost::asio::any_io_executor;

  explicit BackendStream(tcp::socket s) : s_(std::move(s)) {}
  explicit BackendStream(unix_socket s) : s_(std::move(s)) {}
  explicit BackendStream(std::unique_ptr<tls_stream> s) : s_(std::move(s)) {}

  executor_type get_executor() {
    return std::visit([](auto& s) -> executor_type { return lowest(s).get_executor(); }, s_);
  }
  template <class Buffers, class Handler>
  void async_read_some(const Buffers& b, Handler&& h) {
    std::visit([&](auto& s) { deref(s).async_read_some(b, std::forward<Handler>(h)); }, s_);
  }
  template <class Buffers, class Handler>
  void async_write_some(const Buffers& b, Handler&& h) {
    std::visit([&](auto& s) { deref(s).async_write_some(b, std::forward<Handler>(h)); }, s_);
  }
  void cancel() {
    boost::system::error_code ec;
    std::visit([&](auto& s) { lowest(s).cancel(ec); }, s_);
  }
  void close() {
    boost::system::error_code ec;
    std::visit([&](auto& s) { lowest(s).close(ec); }, s_);
  }
  // True when an idle pooled connection may still be used: open, and the backend has neither
  // closed it nor sent anything unasked.
  bool reusable();

 private:
  static tcp::socket& lowest(tcp::socket& s) { return s; }
  static unix_socket& lowest(unix_socket& s) { return s; }
  static tcp::socket& lowest(std::unique_ptr<tls_stream>& s) { return s->next_layer(); }
  static tcp::socket& deref(tcp::socket& s) { return s; }
  static unix_socket& deref(unix_socket& s) { return s; }
  static tls_stream& deref(std::unique_ptr<tls_stream>& s) { return *s; }

  std::variant<tcp::socket, unix_socket, std::unique_ptr<tls_stream>> s_;
};

// Which idle connections a request may reuse. SECURITY: a pooled TLS connection carries the
// verification it was opened under (the site's `verify`, its trusted CAs, in that
// generation), so connections are shared only within one site of one configuration generation,
// never merely by URL.
struct PoolKey {
  std::uint64_t generation = 0;
  std::size_t site = 0;           // index in that generation
  const std::string& backend;     // the backend as configured
};

// This loop thread's idle connections for `key`. Pools of generations older than the key's are
// closed on the way: nothing newer will ask for them.
std::unique_ptr<BackendStream> take_idle(const PoolKey& key);
void put_idle(const PoolKey& key, std::unique_ptr<BackendStream> s, std::size_t max_idle);

}  // namespace certgate::http
