#include "http/admin.hpp"

#include "http/admin_access.hpp"
#include "http/accept_pause.hpp"
#include "http/health.hpp"
#include "http/status_page.hpp"
#include "tls/tls_facts.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <ctime>
#include <memory>

namespace certgate::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;

namespace {

// Stream: beast::tcp_stream (plain) or beast::ssl_stream<beast::tcp_stream> (admin_client_cas).
template <class Stream>
class AdminSession : public std::enable_shared_from_this<AdminSession<Stream>> {
 public:
  AdminSession(ServerState& state, asio::ip::tcp::socket s) : state_(state), stream_(std::move(s)) {}
  AdminSession(ServerState& state, asio::ip::tcp::socket s, asio::ssl::context& tls)
      : state_(state), stream_(std::move(s), tls) {}

  void start() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(10));
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      read();
    } else {
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->read();
                              });
    }
  }

 private:
  void read() {
    parser_.header_limit(8192);
    // A trailer section is parsed into header fields once it is whole in this buffer: bounded,
    // it can neither grow without end nor hold a field Beast cannot store (it throws, and the
    // process aborted on a 70 KB trailer field).
    buf_.max_size(16384);
    bhttp::async_read(stream_, buf_, parser_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return;
      self->answer();
    });
  }

  ServerState& state_;
  Stream stream_;
  beast::flat_buffer buf_;
  bhttp::request_parser<bhttp::empty_body> parser_;
  bhttp::response<bhttp::string_body> res_;

  // The status page (http/status_page.hpp): "/" and "/status.json".
  bool status_answer(bhttp::verb method, std::string_view target, bhttp::response<bhttp::string_body>& res) {
    if (method != bhttp::verb::get || (target != "/" && target != "/status.json")) return false;
    const std::int64_t now = state_.clock->unix_seconds();
    res.result(bhttp::status::ok);  // Cache-Control: no-store is set by answer() for every path
    if (target == "/") {
      res.set(bhttp::field::content_type, "text/html; charset=utf-8");
      // Nothing but this document: no scripts, no requests elsewhere.
      // Nor framed by another page (frame-ancestors does not fall back to default-src).
      res.set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
      res.set("X-Frame-Options", "DENY");
      res.body() = status_html(state_, now);
    } else {
      res.set(bhttp::field::content_type, "application/json");
      res.body() = status_json(state_, now);
    }
    return true;
  }

  bool host_allowed(const bhttp::request<bhttp::empty_body>& req) const {
    auto gen = state_.current.load();
    const auto host = req.find(bhttp::field::host);
    return gen && admin_host_allowed(host == req.end() ? std::string_view{} : std::string_view(host->value()),
                                     gen->snap->cfg.server);
  }

  void misdirected() {
    res_.result(bhttp::status::misdirected_request);
    res_.body() = "certgate admin: this Host is not a name of this listener; add it to [server] admin_hosts\n";
  }

  void answer() {
    const auto& req = parser_.get();
    res_.version(11);
    res_.keep_alive(false);
    const bool get = req.method() == bhttp::verb::get || req.method() == bhttp::verb::head;
    // A balancer's probe must not be cached by anything between it and here.
    res_.set(bhttp::field::cache_control, "no-store");
    res_.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    res_.set("X-Content-Type-Options", "nosniff");
    if (get && req.target() == "/metrics" && !host_allowed(req)) {
      misdirected();
    } else if (get && req.target() == "/metrics") {
      res_.result(bhttp::status::ok);
      res_.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res_.body() = metrics_text(state_);
    } else if (get && req.target() == "/healthz") {
      res_.result(bhttp::status::ok);
      res_.body() = "ok\n";
    } else if (get && req.target() == "/readyz") {
      const auto reasons = not_ready_reasons(state_);
      res_.result(reasons.empty() ? bhttp::status::ok : bhttp::status::service_unavailable);
      res_.body() = reasons.empty() ? "ready\n" : "not ready\n";
      for (const auto& r : reasons) res_.body() += "- " + r + "\n";
    } else if ((req.target() == "/" || req.target() == "/status.json") && !host_allowed(req)) {
      misdirected();
    } else if (!status_answer(req.method(), req.target(), res_)) {
      res_.result(bhttp::status::not_found);
      res_.body() = "certgate admin: GET / (status), /status.json, /metrics, /healthz and /readyz are served here\n";
    }
    res_.prepare_payload();
    if (req.method() == bhttp::verb::head) res_.body().clear();
    bhttp::async_write(stream_, res_, [self = this->shared_from_this()](beast::error_code, std::size_t) {
      beast::error_code ignored;
      beast::get_lowest_layer(self->stream_).socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    });
  }
};

}  // namespace

std::string metrics_text(const ServerState& state) {
  std::string out =
      "# HELP certgate_connections_open Client connections open now, all loops.\n"
      "# TYPE certgate_connections_open gauge\n"
      "certgate_connections_open " + std::to_string(state.connections.load()) + "\n";
  if (auto gen = state.current.load())
    out += "# HELP certgate_config_generation The configuration generation serving new connections.\n"
           "# TYPE certgate_config_generation gauge\n"
           "certgate_config_generation " + std::to_string(gen->snap->generation) + "\n";
  const auto& checks = tls::chain_checks();
  out += "# HELP certgate_chain_checks_total Client certificate chains checked for a connection: validated, or "
         "taken from the site's validation cache (a connection's later requests reuse its own result).\n"
         "# TYPE certgate_chain_checks_total counter\n"
         "certgate_chain_checks_total{source=\"validated\"} " + std::to_string(checks.validated.load()) + "\n"
         "certgate_chain_checks_total{source=\"cache\"} " + std::to_string(checks.cached.load()) + "\n";
  if (state.revocation) out += state.revocation->metrics();
  out += expiry_metrics(state, state.clock->unix_seconds());
  return out;
}

void accept_admin(ServerState& state, asio::ip::tcp::acceptor& acceptor, asio::ssl::context* tls) {
  acceptor.async_accept([&state, &acceptor, tls](beast::error_code ec, asio::ip::tcp::socket s) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      // admin_allow of the running configuration (loopback unless it says more).
      boost::system::error_code peer_ec;
      const auto peer = s.remote_endpoint(peer_ec);
      auto gen = state.current.load();
      if (!peer_ec && gen && AdminAccess(gen->snap->cfg.server).allows(peer.address())) {
        if (tls)
          std::make_shared<AdminSession<beast::ssl_stream<beast::tcp_stream>>>(state, std::move(s), *tls)->start();
        else
          std::make_shared<AdminSession<beast::tcp_stream>>(state, std::move(s))->start();
      }
    }
    // A balancer's probe arriving while clients hold every descriptor must not spin the loop
    // this acceptor shares with them.
    if (out_of_resources(ec)) {
      auto pause = std::make_shared<asio::steady_timer>(acceptor.get_executor(), kAcceptBackoff);
      pause->async_wait([&state, &acceptor, tls, pause](boost::system::error_code) {
        if (acceptor.is_open()) accept_admin(state, acceptor, tls);
      });
      return;
    }
    accept_admin(state, acceptor, tls);
  });
}

}  // namespace certgate::http
