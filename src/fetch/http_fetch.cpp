#include "fetch/http_fetch.hpp"

#include "config/backend.hpp"
#include "config/config.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <memory>

namespace certgate::fetch {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

// config::parse_backend reads scheme, host and port; a URL taken from a certificate must also
// carry no userinfo and no control characters, and its path and query are kept as written.
bool parse_url(const std::string& text, Url& out) {
  auto b = config::parse_backend(text);
  if (!b || b->kind == config::BackendUrl::Kind::Unix) return false;
  if (b->authority.find('@') != std::string::npos || b->port.size() > 5 ||
      b->port.find_first_not_of("0123456789") != std::string::npos)
    return false;
  const std::size_t start = text.find("://") + 3;
  const std::size_t slash = text.find('/', start);
  out.target = slash == std::string::npos ? "/" : text.substr(slash);
  for (char c : out.target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  out.https = b->kind == config::BackendUrl::Kind::Https;
  out.host = b->host;
  out.port = b->port;
  return true;
}

namespace {

asio::ssl::context& client_tls() {
  static asio::ssl::context ctx = [] {
    asio::ssl::context c(asio::ssl::context::tls_client);
    c.set_default_verify_paths();
    c.set_verify_mode(asio::ssl::verify_peer);
    return c;
  }();
  return ctx;
}

std::string resolve_location(const Url& base, const std::string& location) {
  if (location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0) return location;
  if (!location.empty() && location.front() == '/')
    return std::string(base.https ? "https://" : "http://") + base.host + ":" + base.port + location;
  return "";  // relative references other than absolute paths are not followed
}

// One fetch: resolve, connect, (TLS), write, read; then a redirect starts over under the same
// deadline and byte cap.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(asio::io_context& io, Request req, std::function<void(Result)> done)
      : io_(io), req_(std::move(req)), done_(std::move(done)), resolver_(req_.resolver_io ? *req_.resolver_io : io), timer_(io),
        started_(std::chrono::steady_clock::now()) {}

  void start() {
    timer_.expires_after(std::chrono::milliseconds(req_.timeout_ms));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->timed_out_ = true;
      self->resolver_.cancel();
      // A lookup under way is not interrupted by cancel(): the fetch ends now, not when it returns.
      if (self->resolving_) return self->fail("cannot resolve " + self->url_.host);
      if (self->tcp_) self->tcp_->cancel();
      if (self->tls_) beast::get_lowest_layer(*self->tls_).cancel();
    });
    go(req_.url);
  }

 private:
  asio::io_context& io_;
  Request req_;
  std::function<void(Result)> done_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point started_;
  std::unique_ptr<beast::tcp_stream> tcp_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
  Url url_;
  std::string current_;
  int redirects_ = 0;
  bool timed_out_ = false;
  bool finished_ = false;
  bool resolving_ = false;
  beast::flat_buffer buf_;
  std::unique_ptr<bhttp::response_parser<bhttp::string_body>> parser_;
  bhttp::request<bhttp::string_body> request_;

  void finish(Result r) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
    r.final_url = current_;
    done_(std::move(r));
  }
  void fail(const std::string& what, beast::error_code ec = {}) {
    Result r;
    r.error = timed_out_ ? "timed out after " + std::to_string(req_.timeout_ms) + " ms (" + what + ")"
                         : what + (ec ? ": " + ec.message() : "");
    finish(std::move(r));
  }

  // The deadline may pass between two steps (its handler ran when no operation was pending to
  // cancel): every step checks it, or a server answering just then could hold the fetch forever.
  bool late() {
    if (timed_out_) fail("deadline passed");
    return timed_out_;
  }

  void go(const std::string& url) {
    if (late()) return;
    current_ = url;
    if (!parse_url(url, url_)) return fail("not an http or https URL: " + url);
    tcp_.reset();
    tls_.reset();
    resolving_ = true;
    resolver_.async_resolve(url_.host, url_.port,
                            asio::bind_executor(io_, [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type r) {
                              self->resolving_ = false;
                              if (ec) return self->fail("cannot resolve " + self->url_.host, ec);
                              self->connect(r);
                            }));
  }

  void connect(const tcp::resolver::results_type& endpoints) {
    if (late()) return;
    request_ = {};
    request_.method(req_.method == "POST" ? bhttp::verb::post : bhttp::verb::get);
    request_.target(url_.target);
    request_.version(11);
    request_.set(bhttp::field::host, url_.host);
    request_.set(bhttp::field::user_agent, "certgate");
    request_.set(bhttp::field::connection, "close");
    if (req_.method == "POST") {
      request_.set(bhttp::field::content_type, req_.content_type);
      request_.body() = req_.body;
      request_.prepare_payload();
    }
    parser_ = std::make_unique<bhttp::response_parser<bhttp::string_body>>();
    parser_->body_limit(req_.max_bytes);
    parser_->header_limit(16384);
    buf_.clear();
    // A trailer section is parsed into header fields once it is whole in this buffer, and Beast
    // throws on a field over 65533 bytes: a distribution point's (or anyone on its plain http://
    // path's) 70 KB trailer field left the fetch unfinished and every request waiting on it hung.
    buf_.max_size(config::kMaxHeadBytes);
    if (url_.https) {
      tls_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io_, client_tls());
      SSL_set_tlsext_host_name(tls_->native_handle(), url_.host.c_str());
      tls_->set_verify_callback(asio::ssl::host_name_verification(url_.host));
      beast::get_lowest_layer(*tls_).async_connect(endpoints, [self = shared_from_this()](beast::error_code ec, auto) {
        if (ec) return self->fail("cannot connect to " + self->url_.host + ":" + self->url_.port, ec);
        if (self->late()) return;
        self->tls_->async_handshake(asio::ssl::stream_base::client, [self](beast::error_code ec) {
          if (ec) return self->fail("TLS handshake with " + self->url_.host + " failed", ec);
          if (self->late()) return;
          self->exchange(*self->tls_);
        });
      });
    } else {
      tcp_ = std::make_unique<beast::tcp_stream>(io_);
      tcp_->async_connect(endpoints, [self = shared_from_this()](beast::error_code ec, auto) {
        if (ec) return self->fail("cannot connect to " + self->url_.host + ":" + self->url_.port, ec);
        if (self->late()) return;
        self->exchange(*self->tcp_);
      });
    }
  }

  template <class Stream>
  void exchange(Stream& s) {
    bhttp::async_write(s, request_, [self = shared_from_this(), &s](beast::error_code ec, std::size_t) {
      if (ec) return self->fail("sending the request failed", ec);
      if (self->late()) return;
      bhttp::async_read(s, self->buf_, *self->parser_, [self](beast::error_code ec, std::size_t) {
        if (ec == bhttp::error::body_limit)
          return self->fail("answer larger than " + std::to_string(self->req_.max_bytes) + " bytes");
        if (ec) return self->fail("reading the answer failed", ec);
        self->answered();
      });
    });
  }

  void answered() {
    auto& res = parser_->get();
    const int status = static_cast<int>(res.result_int());
    if (status >= 300 && status < 400 && res.count(bhttp::field::location)) {
      std::string next = resolve_location(url_, std::string(res[bhttp::field::location]));
      if (next.empty()) return fail("redirect to an unsupported location");
      if (++redirects_ > req_.max_redirects)
        return fail("more than " + std::to_string(req_.max_redirects) + " redirects");
      return go(next);
    }
    Result r;
    r.status = status;
    if (status != 200) {
      r.error = "HTTP status " + std::to_string(status);
      return finish(std::move(r));
    }
    r.ok = true;
    r.body = std::move(res.body());
    finish(std::move(r));
  }
};

}  // namespace

void http_fetch(asio::io_context& io, Request req, std::function<void(Result)> done) {
  std::make_shared<Exchange>(io, std::move(req), std::move(done))->start();
}

}  // namespace certgate::fetch
