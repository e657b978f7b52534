#include "http/proxy_accept.hpp"

#include "net/proxy_protocol.hpp"

#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>

namespace certgate::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Status = net::ProxyHeader::Status;

// A misconfigured balancer or a scan must not flood the log: at most this many lines a second.
constexpr int kLinesPerSecond = 10;

void report(spdlog::level::level_enum level, const std::string& peer, const runtime::ListenerRuntime& l,
            std::string_view why) {
  static std::atomic<std::int64_t> second{0};
  static std::atomic<int> lines{0};
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now().time_since_epoch()).count();
  std::int64_t seen = second.load(std::memory_order_relaxed);
  if (seen != now && second.compare_exchange_strong(seen, now, std::memory_order_relaxed))
    lines.store(0, std::memory_order_relaxed);
  if (lines.fetch_add(1, std::memory_order_relaxed) >= kLinesPerSecond) return;
  spdlog::log(level, "PROXY protocol: connection from {} to {}:{} closed: {}", peer, l.address, l.port, why);
}

class ProxyHeaderReader final : public ConnectionBase,
                                public std::enable_shared_from_this<ProxyHeaderReader> {
 public:
  ProxyHeaderReader(ServerState& state, Loop& loop, std::shared_ptr<const Generation> gen,
                    std::size_t listener, tcp::socket socket, std::string peer)
      : state_(state), loop_(loop), gen_(std::move(gen)), listener_(listener),
        socket_(std::move(socket)), timer_(loop.io), peer_(std::move(peer)) {
    loop_.connections.insert(this);
    // Counted like a connection: max_connections bounds those still sending their header too.
    state_.connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~ProxyHeaderReader() override {
    loop_.connections.erase(this);
    state_.connections.fetch_sub(1, std::memory_order_relaxed);
  }

  void start() {
    timer_.expires_after(std::chrono::milliseconds(gen_->snap->cfg.server.limits.handshake_timeout_ms));
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->done_) return;
      self->timed_out_ = true;
      boost::system::error_code ignored;
      self->socket_.cancel(ignored);
    });
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    read_exactly(net::kProxyMinBytes);
  }

  void stop_if_idle() override { finish(); }

 private:
  ServerState& state_;
  Loop& loop_;
  std::shared_ptr<const Generation> gen_;
  std::size_t listener_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  std::string peer_;
  std::array<char, net::kProxyV2MaxBytes> buf_{};
  std::size_t have_ = 0;
  bool done_ = false;
  bool timed_out_ = false;

  const runtime::ListenerRuntime& listener() const { return gen_->snap->listeners[listener_]; }

  void read_exactly(std::size_t n) {
    asio::async_read(socket_, asio::buffer(buf_.data() + have_, n),
                     [self = shared_from_this()](boost::system::error_code ec, std::size_t got) {
                       self->have_ += got;
                       if (ec) return self->failed(ec);
                       self->step();
                     });
  }

  // A v1 header ends at its LF, at an offset nothing announces: look at what has arrived, and
  // take it up to the LF, or all of it when no LF is there yet (all of it is header then).
  void read_v1() {
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return self->failed(ec);
      // The socket is non-blocking for this reader: a readiness that vanished waits again
      // instead of stopping the loop.
      const std::size_t room = net::kProxyV1MaxBytes - self->have_;
      char* at = self->buf_.data() + self->have_;
      const std::size_t seen = self->socket_.receive(asio::buffer(at, room), tcp::socket::message_peek, ec);
      if (ec == asio::error::would_block) return self->read_v1();
      if (ec) return self->failed(ec);
      if (seen == 0) return self->failed(asio::error::eof);
      const auto* lf = static_cast<const char*>(std::memchr(at, '\n', seen));
      const std::size_t take = lf ? static_cast<std::size_t>(lf - at) + 1 : seen;
      // Already in the socket's buffer: this read does not wait.
      const std::size_t got = asio::read(self->socket_, asio::buffer(at, take), ec);
      self->have_ += got;
      if (ec) return self->failed(ec);
      self->step();
    });
  }

  void step() {
    const auto h = net::parse_proxy_header(std::string_view(buf_.data(), have_));
    switch (h.status) {
      case Status::Invalid: return fail(spdlog::level::warn, "malformed PROXY header: " + h.error);
      case Status::Complete: {
        if (h.length != have_) return fail(spdlog::level::warn, "malformed PROXY header");
        done_ = true;
        timer_.cancel();
        ProxiedClient client;
        if (h.source) client.address = h.source->address();
        boost::system::error_code ec;
        socket_.non_blocking(false, ec);
        auto s = std::move(socket_);
        open_connection(state_, loop_, listener_, std::move(s), client);
        return;
      }
      case Status::Incomplete:
        if (h.version == 2)
          return read_exactly(h.v2_total ? h.v2_total - have_ : net::kProxyV2FixedBytes - have_);
        return read_v1();
    }
  }

  void failed(boost::system::error_code ec) {
    if (done_) return;
    if (timed_out_)
      return fail(spdlog::level::warn, "no complete PROXY header within handshake_timeout_ms (" +
                                           std::to_string(gen_->snap->cfg.server.limits.handshake_timeout_ms) +
                                           " ms)");
    // A balancer's plain TCP health check connects and hangs up without a byte: not news.
    if (ec == asio::error::eof && have_ == 0) return fail(spdlog::level::debug, "closed before any byte");
    fail(spdlog::level::warn, "connection ended inside the PROXY header (" + ec.message() + ")");
  }

  void fail(spdlog::level::level_enum level, const std::string& why) {
    if (done_) return;
    report(level, peer_, listener(), why);
    finish();
  }

  void finish() {
    done_ = true;
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }
};

}  // namespace

void accept_proxy_header(ServerState& state, Loop& loop, std::size_t listener_index, tcp::socket socket) {
  auto gen = state.current.load();
  const auto& listener = gen->snap->listeners[listener_index];
  boost::system::error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  if (ec) return;  // already gone
  if (!net::any_contains(listener.proxy_from, peer.address())) {
    report(spdlog::level::warn, peer.address().to_string(), listener,
           "not in proxy_protocol_from (only the load balancers listed there may connect here)");
    socket.close(ec);
    return;
  }
  std::make_shared<ProxyHeaderReader>(state, loop, std::move(gen), listener_index, std::move(socket),
                                      peer.address().to_string())
      ->start();
}

}  // namespace certgate::http
