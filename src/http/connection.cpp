#include "http/connection.hpp"

#include "http/basic_auth.hpp"
#include "http/file_cache.hpp"
#include "http/forward.hpp"
#include "http/h2_connection.hpp"
#include "http/handler.hpp"
#include "http/path.hpp"
#include "http/proxy_accept.hpp"
#include "http/proxy_exchange.hpp"
#include "http/step_up.hpp"
#include "http/request_steps.hpp"
#include "pki/x509_text.hpp"
#include "session/token.hpp"
#include "state/store.hpp"
#include "token/cookie.hpp"
#include "token/signed_response.hpp"
#include "tls/on_demand.hpp"
#include "tls/server_context.hpp"
#include "tls/stream.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <boost/asio/ssl/error.hpp>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <functional>
#include <chrono>
#include <ctime>
#include <optional>

namespace certgate::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kFileChunk = 64 * 1024;

// At most one line a second: each refusal costs the client one large upload, not a log flood.
void report_cert_list_too_long(const std::string& client, std::size_t limit) {
  static std::atomic<std::int64_t> last_logged{0};
  const std::int64_t now = std::time(nullptr);
  std::int64_t last = last_logged.load(std::memory_order_relaxed);
  if (now == last || !last_logged.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
  spdlog::warn("TLS handshake from {} refused: its client certificate list is larger than "
               "max_client_cert_list_bytes ({} bytes)", client, limit);
}

template <bool Tls>
class Connection final : public ConnectionBase,
                         public log::FieldSource,
                         public std::enable_shared_from_this<Connection<Tls>> {
  using Stream = std::conditional_t<Tls, tls::Stream, tcp::socket>;

 public:
  Connection(ServerState& state, Loop& loop, std::shared_ptr<const Generation> gen,
             std::size_t listener_index, SSL_CTX* tls, tcp::socket socket,
             const std::optional<ProxiedClient>& proxied)
      : state_(state),
        loop_(loop),
        gen_(std::move(gen)),
        handshake_gen_(Tls ? gen_ : nullptr),
        snap_(gen_->snap.get()),
        listener_index_(listener_index),
        listener_(&snap_->listeners[listener_index]),
        stream_(make_stream(std::move(socket), tls)),
        timer_(loop.io) {
    boost::system::error_code ec;
    auto local = this->socket().local_endpoint(ec);
    // Behind a PROXY protocol balancer the client is the one its header names.
    const auto remote = proxied && proxied->address ? *proxied->address
                                                    : this->socket().remote_endpoint(ec).address();
    s_ip_ = local.address().to_string();
    s_port_ = local.port();
    c_ip_ = remote.to_string();
    local_client_ = remote.is_loopback() && !(proxied && !proxied->address);
    // The read buffer holds a request head, or the part of a body (a chunk-size line with its
    // extensions, a trailer) the parser cannot consume yet; beyond that a client is only
    // trying to make us keep its bytes (reading fails with buffer_overflow → 400). A trailer
    // section is parsed into header fields once it is whole in this buffer, so the buffer stays
    // within what a field may hold (a 70 KB trailer field aborted the process).
    buf_max_ = std::min(snap_->cfg.server.limits.max_header_bytes + kFileChunk, config::kMaxHeadBytes);
    buf_.max_size(buf_max_);
    loop_.connections.insert(this);
    state_.connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~Connection() override {
    // Browsers and HTTP clients hang up without close_notify; OpenSSL would take that as a bad
    // session and drop it from the session cache. A completed handshake's session stays
    // resumable (as nginx does with quiet shutdown).
    if constexpr (Tls)
      if (tls_.tls) SSL_set_shutdown(stream_.native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    loop_.connections.erase(this);
    state_.connections.fetch_sub(1, std::memory_order_relaxed);
  }

  void start() {
    const auto& limits = snap_->cfg.server.limits;
    if constexpr (Tls) {
      arm(limits.handshake_timeout_ms);
      stream_.async_handshake([self = this->shared_from_this()](beast::error_code ec) { self->on_handshake(ec); });
    } else {
      const auto* route = listener_->default_route();
      site_ = route ? route->site : listener_->routes.front().site;
      read_next();
    }
  }

  void stop_if_idle() override {
    if (auto h2 = h2_.lock()) return h2->shutdown();
    if (idle_) close_now();
  }

  // log::FieldSource
  std::string request_header(std::string_view name) const override {
    return std::string(x_->req.header(name));
  }
  std::string response_header(std::string_view name) const override {
    return std::string(x_->resp.header(name));
  }
  std::string variable(std::string_view name) const override {
    return request_variable(name, tls_, const_cast<Connection*>(this)->cert_facts().leaf.get(), Tls, x_->outcome);
  }

 private:
  static Stream make_stream(tcp::socket socket, SSL_CTX* tls) {
    if constexpr (Tls) return Stream(std::move(socket), tls);
    else return Stream(std::move(socket));
  }

  tcp::socket& socket() { return beast::get_lowest_layer(stream_); }
  const config::Limits& limits() const { return snap_->cfg.server.limits; }

  // One lazy deadline per connection: pushing the deadline later only moves `deadline_` (the
  // timer wakes at the old time and sleeps again), so the common case costs no cancellation.
  // On expiry the pending socket operation is cancelled, not the socket closed, so a 408 can
  // still be written.
  //
  // A wait lasts at most the shortest of the header, body and keep-alive timeouts: a request's
  // deadlines (each at least that far off) then always fall after the wait in progress, so the
  // keep-alive cycle never moves the timer (a move is a cancellation and a reactor update).
  void arm(std::uint32_t ms) {
    timed_out_ = false;
    deadline_ = Clock::now() + std::chrono::milliseconds(ms);
    if (!timer_waiting_) return wait_timer();
    // Earlier than the wait in progress: move the timer. When nothing was cancelled, the
    // expiry handler is already queued and will wait again for the new deadline.
    if (deadline_ < timer_.expiry() && timer_.expires_at(deadline_) > 0) start_wait();
  }
  void disarm() { deadline_ = Clock::time_point::max(); }
  void wait_timer() {
    const auto& l = limits();
    const auto step = std::chrono::milliseconds(
        std::min({l.header_timeout_ms, l.body_timeout_ms, l.keepalive_timeout_ms}));
    const auto now = Clock::now();
    timer_.expires_at(deadline_ - now > step ? now + step : deadline_);
    start_wait();
  }
  void start_wait() {
    timer_waiting_ = true;
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec == asio::error::operation_aborted || self->closed_) return;  // moved, or closed
      self->timer_waiting_ = false;
      if (Clock::now() < self->deadline_) return self->wait_timer();
      self->timed_out_ = true;
      boost::system::error_code ignored;
      self->socket().cancel(ignored);
    });
  }
  bool timed_out(beast::error_code ec) const {
    return timed_out_ && ec == asio::error::operation_aborted;
  }
  const runtime::SiteRuntime& site() const { return snap_->sites[site_]; }

  void on_handshake(beast::error_code ec) {
    // Failed handshakes are not requests: nothing to answer or log, save a certificate list
    // over the limit, which an administrator must be able to tell from a broken client.
    if (ec) {
      if (ec.category() == asio::error::get_ssl_category() &&
          ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_EXCESSIVE_MESSAGE_SIZE)
        report_cert_list_too_long(c_ip_, snap_->cfg.server.max_client_cert_list_bytes);
      return close_now();
    }
    SSL* ssl = stream_.native_handle();
    const auto* route = tls::selected_route(ssl);
    if (route == nullptr) return;
    site_ = route->site;
    tls_ = tls::TlsFacts::from_handshake(ssl);
    tls_.on_demand = route->on_demand;
    if constexpr (Tls) {
      const unsigned char* alpn = nullptr;
      unsigned int alpn_len = 0;
      SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
      if (alpn_len == 2 && std::memcmp(alpn, "h2", 2) == 0) return start_h2_session();
    }
    read_next();
  }

  // The HTTP/2 session drives this connection's stream and TLS facts from now on; this object
  // stays alive (held by the session) until the session closes it.
  void start_h2_session() {
    disarm();
    idle_ = false;
    h2_ = start_h2(H2Start{state_, loop_, gen_, listener_index_, site_, stream_, tls_, s_ip_, c_ip_, s_port_,
                           local_client_, [self = this->shared_from_this()] { self->close_now(); }});
  }

  void read_next() {
    if (state_.stopping.load(std::memory_order_relaxed)) return close();
    idle_ = true;
    if (buf_.size() > 0) return read_header();  // pipelined request already buffered
    arm(limits().keepalive_timeout_ms);
    // Idle: hold no buffers while waiting. The last request's state and the empty read buffer
    // go back to this loop's spares, for whichever connection speaks next.
    release_request();
    wait_readable([self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return self->close_now();  // idle timeout or peer closed: nothing to answer
      self->read_header(true);
    });
  }

  template <class Handler>
  void wait_readable(Handler&& handler) {
    if constexpr (Tls) stream_.async_wait_readable(std::forward<Handler>(handler));
    else socket().async_wait(tcp::socket::wait_read, std::forward<Handler>(handler));
  }

  void release_request() {
    if (!x_) return;
    if (buf_.size() == 0) {
      const std::size_t max = buf_.max_size();
      x_->spare_buffer = std::move(buf_);
      buf_.max_size(max);
    }
    spares().put(std::move(x_));
  }

  // `readable`: the socket just woke this connection, so the head is read at once where it is
  // already there (TLS), and asynchronously for what is missing. A pipelined request (already
  // buffered) always goes the asynchronous way: answering it cannot recurse into the next one.
  void read_header(bool readable = false) {
    idle_ = false;
    started_ = Clock::now();
    if (!x_) {
      x_ = spares().take();
      if (buf_.capacity() == 0 && x_->spare_buffer.capacity() > 0) {
        const std::size_t max = buf_.max_size();
        buf_ = std::move(x_->spare_buffer);
        buf_.max_size(max);
      }
    }
    x_->reset();
    x_->request_id_len = RequestIds::mine().next(x_->request_id);
    buf_.max_size(buf_max_);  // a read-ahead (on demand) may have raised it for one request
    x_->parser.emplace();
    x_->parser->header_limit(static_cast<std::uint32_t>(limits().max_header_bytes));
    x_->parser->body_limit(limits().max_body_bytes);
    arm(limits().header_timeout_ms);
    cs_bytes_ = 0;
    if constexpr (Tls) {
      if (readable) {
        beast::error_code ec;
        cs_bytes_ = bhttp::read_header(stream_, buf_, *x_->parser, ec);
        if (ec != asio::error::would_block) return on_header(ec);
      }
    }
    bhttp::async_read_header(stream_, buf_, *x_->parser,
                             [self = this->shared_from_this()](beast::error_code ec,
                                                               std::size_t n) {
                               self->cs_bytes_ += n;
                               self->on_header(ec);
                             });
  }

  void on_header(beast::error_code ec) {
    if (ec == bhttp::error::header_limit)
      return fail(auth::Verdict::Http431_HeadersTooLarge, "the request head is larger than max_header_bytes (" +
                           std::to_string(limits().max_header_bytes) + ")");
    if (ec == bhttp::error::body_limit)  // Content-Length announced more than allowed
      return fail(auth::Verdict::Http413_BodyTooLarge, "the request body is larger than max_body_bytes (" +
                           std::to_string(limits().max_body_bytes) + ")");
    if (timed_out(ec))
      return fail(auth::Verdict::Http408_RequestTimeout, "the request head did not arrive within header_timeout_ms");
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof) return close_now();
    if (ec) return fail(auth::Verdict::Http400_BadRequest, "malformed request: " + ec.message());

    const auto& msg = x_->parser->get();
    x_->req.method.assign(msg.method_string());
    x_->req.target.assign(msg.target());
    x_->req.version = msg.version();
    std::size_t count = 0;
    BodyFraming framing;
    // Copied into the strings the last request on this loop left (their capacity kept).
    auto& headers = x_->req.headers;
    for (const auto& f : msg) {
      if (++count > limits().max_headers) {
        headers.resize(count - 1);
        return fail(auth::Verdict::Http431_HeadersTooLarge, "the request has more than max_headers (" +
                             std::to_string(limits().max_headers) + ") header fields");
      }
      if (count > headers.size()) headers.emplace_back();
      headers[count - 1].name.assign(f.name_string());
      headers[count - 1].value.assign(f.value());
      if (f.name() == bhttp::field::transfer_encoding) framing.transfer_encoding(f.value());
      else if (f.name() == bhttp::field::content_length) framing.content_length(f.value());
    }
    headers.resize(count);
    if (auto refused = framing.refusal(msg.version()); refused.answer)
      return fail(*refused.answer, std::string(refused.reason));
    if (x_->req.target.size() > limits().max_url_bytes)
      return fail(auth::Verdict::Http414_UrlTooLong, "the request target is longer than max_url_bytes (" +
                           std::to_string(limits().max_url_bytes) + ")");
    keep_alive_ = msg.keep_alive();
    if (auto len = x_->parser->content_length(); len && *len > limits().max_body_bytes)
      return fail(auth::Verdict::Http413_BodyTooLarge, "the request body (" + std::to_string(*len) +
                           " bytes) is larger than max_body_bytes (" +
                           std::to_string(limits().max_body_bytes) + ")");
    if (!follow_reload())
      return fail(auth::Verdict::Http421_MisdirectedRequest, "the configuration was reloaded and site \"" + site().cfg.name +
                           "\" is no longer served on this address; open a new connection");
    // Decide on the head alone: a proxied body streams to the backend, any other is drained.
    dispatch();
  }

  // After a reload, the next request on this connection is decided under the new generation:
  // trust, mappings and policies withdrawn by the reload no longer hold for it. The site is
  // found again by name on this connection's listener (listeners cannot change on reload);
  // false when it is gone. One atomic load when nothing was reloaded.
  bool follow_reload() {
    if (state_.generation.load(std::memory_order_acquire) == snap_->generation) return true;
    std::shared_ptr<const Generation> next = state_.current.load();
    const runtime::Snapshot& s = *next->snap;
    const runtime::ListenerRuntime& listener = s.listeners[listener_index_];
    auto found = site_after_reload(s, listener_index_, site().cfg.name);
    // Plain HTTP routes every request by its Host anyway: any site of the address will do as the
    // connection's starting point, so a removed site does not refuse its neighbours' requests.
    if (!found && !Tls) found = listener.routes.front().site;
    if (!found) return false;
    gen_ = std::move(next);
    snap_ = gen_->snap.get();
    listener_ = &listener;
    site_ = *found;
    tls_.forget_decisions();
    assertion_.forget();  // the signing key may have changed
    return true;
  }

  // Reads (and discards) the request body, then runs `then`; an error answers for itself.
  void drain_body_then(std::function<void()> then) {
    if (x_->parser->is_done()) return then();
    if (iequals(x_->req.header("Expect"), "100-continue") && !x_->continued) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue),
                        [self = this->shared_from_this(), then = std::move(then)](beast::error_code ec, std::size_t) mutable {
                          if (ec) return self->close_now();
                          self->read_body(std::move(then));
                        });
      return;
    }
    read_body(std::move(then));
  }

  // Nothing served here reads a request body: it is read through a small fixed buffer and
  // dropped, so a body costs no memory however large (max_body_bytes still bounds how much is
  // read before 413, body_timeout_ms how long), and the connection stays usable afterwards.
  struct Discard {
    explicit Discard(bhttp::request_parser<bhttp::string_body>&& head) : parser(std::move(head)) {}
    bhttp::request_parser<bhttp::buffer_body> parser;
    std::array<char, 16 * 1024> bytes;
  };

  void read_body(std::function<void()> then) {
    arm(limits().body_timeout_ms);
    x_->discard = std::make_unique<Discard>(std::move(*x_->parser));
    x_->parser.reset();
    discard_more(std::move(then));
  }

  void discard_more(std::function<void()> then) {
    auto& body = x_->discard->parser.get().body();
    body.data = x_->discard->bytes.data();
    body.size = x_->discard->bytes.size();
    bhttp::async_read(stream_, buf_, x_->discard->parser,
                      [self = this->shared_from_this(), then = std::move(then)](beast::error_code ec, std::size_t n) mutable {
                        self->cs_bytes_ += n;
                        if (ec == bhttp::error::need_buffer) return self->discard_more(std::move(then));
                        if (ec == bhttp::error::body_limit)
                          return self->fail(auth::Verdict::Http413_BodyTooLarge, "the request body is larger than "
                                                 "max_body_bytes");
                        if (self->timed_out(ec))
                          return self->fail(auth::Verdict::Http408_RequestTimeout, "the request body did not arrive within "
                                                 "body_timeout_ms");
                        // A body the parser refuses (bad chunk size or extension) gets an
                        // answer; a client that hung up mid-body does not.
                        if (ec.category() == bhttp::make_error_code(bhttp::error::bad_chunk).category() &&
                            ec != bhttp::error::partial_message && ec != bhttp::error::end_of_stream)
                          return self->fail(auth::Verdict::Http400_BadRequest, "malformed request body: " + ec.message());
                        if (ec) return self->close_now();
                        self->x_->discard.reset();
                        then();
                      });
  }

  ConnectionInfo info() {
    return ConnectionInfo{*snap_, *listener_, site(), Tls ? &tls_ : nullptr, local_client_, state_.revocation,
                          state_.clock, x_->request_id_text(), &cookie_, snap_->generation};
  }

  void dispatch() {
    x_->routed.state.reset();  // it may point into the last request's login
    login_.reset();
    on_handled(handle(info(), x_->req, x_->routed));
  }
  void resume() {
    if (login_) return login_advance();
    on_handled(http::resume(info(), x_->req, x_->routed));
  }

  // The certificate this request is decided on: the handshake's, or the one a token-login cookie
  // or signed response stands for.
  tls::TlsFacts& cert_facts() { return x_ ? decided_facts(x_->routed, tls_) : tls_; }

  // ---- Token login (docs/token-login.md): the challenge, and the signed response that goes
  // through the same evidence pipeline as a TLS client certificate. ----
  // A nonce stays in the store this long past its expiry, so that a late answer is told
  // "expired" rather than "unknown".
  static constexpr std::int64_t kNonceGrace = 300;
  struct Login {
    token::SignedResponse response;
    tls::TlsFacts facts;
    auth::LocationPolicy policy;
  };

  void token_endpoint(TokenEndpoint which) {
    if (which == TokenEndpoint::Response) return read_token_body();
    if (x_->parser->is_done()) return issue_challenge();
    drain_body_then([self = this->shared_from_this()] { self->issue_challenge(); });
  }

  void token_refuse(auth::Verdict answer, std::string reason) {
    spdlog::warn("site \"{}\": token login from {} refused: {}", site().cfg.name, c_ip_, reason);
    Response r = answer_error(info(), answer, std::move(reason), x_->req.header("Accept"));
    if (answer == auth::Verdict::Http503_StateUnavailable) r.set("Retry-After", "5");
    if (x_->parser && !x_->parser->is_done()) r.close = true;  // the body was not read
    send(std::move(r));
  }

  void issue_challenge() {
    const auto& tl = site().cfg.token_login;
    std::string nonce = token::make_nonce();
    if (nonce.empty()) return token_refuse(auth::Verdict::Http503_StateUnavailable, "the random number generator failed");
    const std::int64_t expires = state_.clock->unix_seconds() + tl.nonce_lifetime_seconds;
    disarm();  // the store answers within its own timeout_ms
    state_.single_use->issue(
        "token", nonce, site().cfg.name + '\n' + std::to_string(expires),
        std::chrono::seconds(tl.nonce_lifetime_seconds + kNonceGrace), loop_.io.get_executor(),
        [self = this->shared_from_this(), nonce, expires](state::Result r) {
          if (r.status != state::Status::Done)
            return self->token_refuse(auth::Verdict::Http503_StateUnavailable,
                                      "the single-use store cannot keep a nonce: " + r.error);
          Response resp;
          resp.set("Content-Type", "application/json");
          resp.set("Cache-Control", "no-store");
          resp.body = "{\"nonce\":\"" + nonce + "\",\"expires\":" + std::to_string(expires) + "}";
          self->send(std::move(resp));
        });
  }

  // The signed response's body, read whole: it is small and bounded (max_response_bytes).
  void read_token_body() {
    const std::size_t max = site().cfg.token_login.max_response_bytes;
    auto& parser = *x_->parser;
    const std::string too_large = "the signed response is larger than max_response_bytes (" + std::to_string(max) + ")";
    if (auto len = parser.content_length(); len && *len > max) {
      Response r = answer_error(info(), auth::Verdict::Http413_BodyTooLarge, too_large, x_->req.header("Accept"));
      r.close = true;
      return send(std::move(r));
    }
    parser.body_limit(max);
    if (parser.is_done()) return on_token_body();
    auto read = [self = this->shared_from_this(), too_large] {
      self->arm(self->limits().body_timeout_ms);
      bhttp::async_read(self->stream_, self->buf_, *self->x_->parser,
                        [self, too_large](beast::error_code ec, std::size_t n) {
                          self->cs_bytes_ += n;
                          if (ec == bhttp::error::body_limit) return self->fail(auth::Verdict::Http413_BodyTooLarge, too_large);
                          if (self->timed_out(ec))
                            return self->fail(auth::Verdict::Http408_RequestTimeout,
                                              "the request body did not arrive within body_timeout_ms");
                          if (ec && ec.category() == bhttp::make_error_code(bhttp::error::bad_chunk).category() &&
                              ec != bhttp::error::partial_message && ec != bhttp::error::end_of_stream)
                            return self->fail(auth::Verdict::Http400_BadRequest, "malformed request body: " + ec.message());
                          if (ec) return self->close_now();
                          self->on_token_body();
                        });
    };
    if (!iequals(x_->req.header("Expect"), "100-continue")) return read();
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::async_write(stream_, asio::buffer(kContinue),
                      [self = this->shared_from_this(), read](beast::error_code ec, std::size_t) {
                        if (ec) return self->close_now();
                        read();
                      });
  }

  void on_token_body() {
    std::string body = std::move(x_->parser->get().body());
    std::string_view target = x_->req.target;
    const auto q = target.find('?');
    const std::string_view nonce = q == std::string_view::npos ? std::string_view() : token::query_param(target.substr(q + 1), "nonce");
    token::Parsed parsed = token::parse_and_verify(body, x_->req.header("Content-Type"), nonce);
    if (!parsed.ok)
      return token_refuse(parsed.bad_signature ? auth::Verdict::Token401_1_BadSignature : auth::Verdict::Http400_BadRequest,
                          std::move(parsed.error));
    login_ = std::make_unique<Login>();
    login_->response = std::move(parsed.response);
    disarm();
    // Spent only once the signature holds: a stranger's garbage cannot burn a user's nonce.
    state_.single_use->consume("token", login_->response.nonce, loop_.io.get_executor(),
                               [self = this->shared_from_this()](state::Result r) { self->nonce_consumed(std::move(r)); });
  }

  void nonce_consumed(state::Result r) {
    using V = auth::Verdict;
    switch (r.status) {
      case state::Status::Unavailable:
        return token_refuse(V::Http503_StateUnavailable, "the single-use store cannot check the nonce (" + r.error +
                                                             "); no login is accepted without it");
      case state::Status::Unknown:
        return token_refuse(V::Token401_1_NonceRefused, "unknown nonce: never issued here, or expired long ago");
      case state::Status::AlreadyUsed:
        return token_refuse(V::Token401_1_NonceRefused, "replayed nonce: it was already used for a login");
      case state::Status::Done: break;
    }
    const auto nl = r.value.find('\n');
    std::int64_t expires = 0;
    const char* end = r.value.data() + r.value.size();
    if (nl == std::string::npos || std::from_chars(r.value.data() + nl + 1, end, expires).ptr != end)
      return token_refuse(V::Token401_1_NonceRefused, "the stored nonce is not one this server issued");
    if (std::string_view(r.value).substr(0, nl) != site().cfg.name)
      return token_refuse(V::Token401_1_NonceRefused, "the nonce was issued for another site (\"" +
                                                          r.value.substr(0, std::min<std::size_t>(nl, 100)) + "\")");
    const std::int64_t now = state_.clock->unix_seconds();
    if (now >= expires)
      return token_refuse(V::Token401_1_NonceRefused, "expired nonce: it expired " + std::to_string(now - expires) +
                                                          " s ago (nonce_lifetime_seconds = " +
                                                          std::to_string(site().cfg.token_login.nonce_lifetime_seconds) + ")");
    login_->facts = token::facts_for(login_->response.certs, Tls ? &tls_ : nullptr);
    // The location's own policy, with a certificate required: the login is the certificate.
    login_->policy = site().policy_for(x_->path);
    login_->policy.ssl_flags.bits |= auth::kSslRequireCert;
    pipeline::Inputs in;
    in.site = &site();
    in.policy = &login_->policy;
    in.tls = &login_->facts;
    in.store = state_.revocation;
    in.clock = state_.clock;
    x_->routed.state.emplace(in);
    login_advance();
  }

  void login_advance() {
    // The login's policy requires the certificate it carries: it never needs one asked for.
    switch (const auto need = x_->routed.state->advance()) {
      case pipeline::Need::None: return login_decided();
      default: return meet(need);
    }
  }

  void login_decided() {
    x_->outcome = x_->routed.state->take_outcome();
    if (!x_->outcome.allowed() || !x_->outcome.certificate) {
      spdlog::warn("site \"{}\": token login from {} refused: {}", site().cfg.name, c_ip_, x_->outcome.reason);
      return send(refusal(info(), x_->outcome, x_->req.header("Accept")));
    }
    const auto& tl = site().cfg.token_login;
    const std::int64_t now = state_.clock->unix_seconds();
    const std::int64_t expires =
        std::min(now + static_cast<std::int64_t>(tl.session_seconds), token::not_after(login_->response.certs[0].get()));
    std::string value = token::make_cookie(tl.cookie_key, site().cfg.name, x_->outcome.user, expires, login_->response.certs);
    if (value.empty())
      return token_refuse(auth::Verdict::Http400_BadRequest,
                          "the certificate chain is too large for a cookie: send the leaf and the fewest intermediates "
                          "(the site's intermediates setting can supply the rest)");
    spdlog::info("site \"{}\": token login of \"{}\" from {} ({})", site().cfg.name, x_->outcome.user, c_ip_,
                 login_->response.form);
    Response resp;
    resp.set("Content-Type", "application/json");
    resp.set("Cache-Control", "no-store");
    resp.set("Set-Cookie", session::set_cookie(tl.cookie_name, value, expires - now, session::SameSite::Strict));
    resp.body = "{\"user\":" + token::json_string(x_->outcome.user) + ",\"expires\":" + std::to_string(expires) + "}";
    send(std::move(resp));
  }

  void on_handled(Handled h) {
    site_ = h.site;  // plain HTTP: the site this request's Host named
    switch (h.need) {
      case pipeline::Need::None: break;
      case pipeline::Need::Certificate: return ask_for_certificate();
      default: return meet(h.need);
    }
    if (h.single_use) return step_up_ticket_then_answer(std::move(h));
    x_->path = std::move(h.path);
    x_->outcome = std::move(h.outcome);
    x_->cache_control = h.cache_control;
    if (h.token) return token_endpoint(*h.token);
    if (h.proxy) return start_proxy(std::move(*h.proxy));
    if (!h.static_job && h.response.status >= 400 && !x_->parser->is_done()) {
      h.response.close = true;  // refused: answer now and close rather than read the body
      return send(std::move(h.response));
    }
    if (x_->parser->is_done()) return respond(std::move(h));  // no body to read first
    auto shared = std::make_shared<Handled>(std::move(h));
    drain_body_then([self = this->shared_from_this(), shared] { self->respond(std::move(*shared)); });
  }

  void respond(Handled&& h) {
    if (!h.static_job) return send(std::move(h.response));
    if (auto hit = cached_file(*h.static_job, state_.clock->steady_ms())) return send(std::move(*hit));
    disarm();  // the file pool does not touch the socket
    read_static(state_, loop_, std::move(*h.static_job), [self = this->shared_from_this()](Response r) {
      self->send(finish_static(self->info(), std::move(r), self->x_->req.header("Accept")));
    });
  }

  void start_proxy(ProxyPlan plan) {
    disarm();  // the exchange keeps its own deadlines
    const auto& fwd = site().cfg.forward;
    ForwardInput in{x_->req, plan.target, plan.host, fwd, *plan.backend, site().cfg.proxy.preserve_host, c_ip_, Tls,
                    x_->outcome, plan.leaf, plan.chain, assertion_.get(site(), x_->outcome, plan.leaf, cert_facts(), *state_.clock), plan.strip_authorization, plan.websocket, plan.own_cookies};
    std::string head = forwarded_head(in);
    auto body = std::make_unique<bhttp::request_parser<bhttp::buffer_body>>(std::move(*x_->parser));
    x_->parser.reset();
    const bool expect = iequals(x_->req.header("Expect"), "100-continue") && !x_->continued;
    auto exchange = std::make_shared<ProxyExchange<Stream>>(
        stream_, buf_, std::move(body), loop_.io, site(), snap_->generation, std::move(plan), std::move(head), x_->req.version,
        x_->req.method == "HEAD", expect, limits().body_timeout_ms,
        [self = this->shared_from_this()](ProxyResult r) { self->proxy_done(std::move(r)); });
    exchange->start();
  }

  void proxy_done(ProxyResult r) {
    if (!r.answered) {
      if (r.answer == auth::Verdict::Http408_RequestTimeout)
        return send(protocol_error(info(), r.answer, std::move(r.reason), x_->req.header("Accept")));
      Response page = gateway_error(info(), r.answer, r.reason, x_->req.header("Accept"));
      page.close = !r.client_reusable;
      return send(std::move(page));
    }
    x_->resp = Response{};
    x_->resp.status = r.status;
    x_->resp.headers = std::move(r.headers);
    sc_bytes_ = r.sent;
    keep_alive_ = keep_alive_ && r.client_reusable && !state_.stopping.load(std::memory_order_relaxed);
    finish(true);
  }

  void meet(pipeline::Need need) {
    disarm();
    meet_need(state_, loop_, info(), *x_->routed.state, need, [self = this->shared_from_this()](NeedMet met) {
      if (!record_need(*self->x_->routed.state, std::move(met)))
        return self->send(password_busy(self->info(), self->x_->req.header("Accept")));
      self->resume();
    });
  }

  // Need::Certificate (docs/on-demand.md): post-handshake authentication or renegotiation after
  // the body was read ahead, else a step-up.
  void ask_for_certificate() {
    if constexpr (Tls) {
      std::string why;
      const tls::LateMethod m = tls::late_method(stream_.native_handle(), &why);
      if (m != tls::LateMethod::StepUp)
        return read_ahead_then([self = this->shared_from_this(), m] { self->late_handshake(m); });
      return on_handled(step_up_or_refuse(info(), x_->req, x_->routed, why));
    } else {
      x_->routed.state->certificate_unavailable("plain HTTP");
      resume();
    }
  }

  // A step-up ticket is issued in, or taken from, the single-use store ([server.state]; Redis is
  // answered on the store's own threads) before the answer goes out.
  void step_up_ticket_then_answer(Handled h) {
    auto shared = std::make_shared<Handled>(std::move(h));
    disarm();
    const Handled::SingleUse op = *shared->single_use;
    run_single_use(state_, loop_, op, [self = this->shared_from_this(), shared](state::Result r) {
      step_up_after_store(self->info(), self->x_->req, *shared, r.status, r.error);
      self->on_handled(std::move(*shared));
    });
  }

  // The body must be off the wire before the certificate request: bytes of it arriving among the
  // handshake messages would end the wait. Kept in the read buffer (at most
  // upload_read_ahead_bytes, IIS uploadReadAheadSize), where the answer reads it as usual.
  void read_ahead_then(std::function<void()> then) {
    if (x_->parser->is_done()) return then();
    const std::uint64_t limit = site().cfg.upload_read_ahead_bytes;
    const auto len = x_->parser->content_length();
    if (!len || *len > limit)
      return fail(auth::Verdict::Http413_BodyTooLarge,
                  (len ? "the request body (" + std::to_string(*len) + " bytes) is larger than upload_read_ahead_bytes ("
                       : "a chunked request body cannot be read ahead (upload_read_ahead_bytes = ") +
                      std::to_string(limit) + "), which is read before the client certificate is asked for");
    if (buf_.max_size() < *len + 1) buf_.max_size(static_cast<std::size_t>(*len + 1));
    arm(limits().body_timeout_ms);
    if (iequals(x_->req.header("Expect"), "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      x_->continued = true;
      asio::async_write(stream_, asio::buffer(kContinue),
                        [self = this->shared_from_this(), then = std::move(then)](beast::error_code ec, std::size_t) mutable {
                          if (ec) return self->close_now();
                          self->read_ahead_more(std::move(then));
                        });
      return;
    }
    read_ahead_more(std::move(then));
  }

  void read_ahead_more(std::function<void()> then) {
    const std::size_t want = static_cast<std::size_t>(*x_->parser->content_length());
    if (buf_.size() >= want) return then();
    stream_.async_read_some(buf_.prepare(std::min<std::size_t>(want - buf_.size(), kFileChunk)),
                            [self = this->shared_from_this(), then = std::move(then)](beast::error_code ec, std::size_t n) mutable {
                              self->buf_.commit(n);
                              if (self->timed_out(ec))
                                return self->fail(auth::Verdict::Http408_RequestTimeout,
                                                  "the request body did not arrive within body_timeout_ms");
                              if (ec) return self->close_now();
                              self->read_ahead_more(std::move(then));
                            });
  }

  void late_handshake(tls::LateMethod m) {
    if constexpr (Tls) {
      SSL* ssl = stream_.native_handle();
      if (!tls::begin_late_handshake(ssl, m)) {
        ERR_clear_error();
        tls_.cert_requested = true;
        x_->routed.state->certificate_unavailable("the TLS library refused to ask this connection for a certificate");
        return resume();
      }
      arm(limits().handshake_timeout_ms);
      stream_.async_late_handshake([m](SSL* s) { return tls::late_handshake_done(s, m); },
                                   [self = this->shared_from_this(), m](beast::error_code ec) {
                                     SSL* ssl = self->stream_.native_handle();
                                     tls::end_late_handshake(ssl, m);
                                     if (self->timed_out(ec)) {
                                       // Answered (and logged) as 403.7, then closed: the TLS
                                       // exchange is left unfinished.
                                       self->tls_.cert_requested = true;
                                       self->keep_alive_ = false;
                                       self->x_->routed.state->certificate_unavailable(
                                           "the client did not answer the certificate request within handshake_timeout_ms");
                                       return self->resume();
                                     }
                                     if (ec) return self->close_now();  // the exchange failed: an alert was sent
                                     self->tls_.take_late_certificate(ssl);
                                     self->x_->routed.state->certificate_answered();
                                     self->resume();
                                   });
    }
  }

  void fail(auth::Verdict answer, std::string reason) {
    send(protocol_error(info(), answer, std::move(reason), x_->req.header("Accept")));
  }

  void send(Response r) {
    x_->resp = std::move(r);
    if (x_->resp.cache_control.empty()) x_->resp.cache_control = x_->cache_control;
    const bool keep = keep_alive_ && !x_->resp.close && !state_.stopping.load(std::memory_order_relaxed);
    keep_alive_ = keep;
    x_->head.clear();
    serialize_head(x_->head, x_->resp, x_->req.version == 10 ? 10 : 11, keep);
    // An answer to HEAD never carries body bytes, error pages included: the client reads none,
    // and on a kept-alive connection they would be taken for the start of the next answer.
    const bool with_body = !x_->resp.head_only && x_->req.method != "HEAD" && x_->resp.status != 304 &&
                           x_->resp.status != 204;
    std::array<asio::const_buffer, 2> bufs{
        asio::buffer(x_->head), asio::buffer(with_body ? x_->resp.body_bytes() : std::string_view())};
    sc_bytes_ = 0;
    if constexpr (Tls) {
      // One write, now, for a head and body the socket takes whole (the usual small answer);
      // what it does not take goes asynchronously. Callers must not touch x_ after send():
      // the connection may already be reading the next request.
      beast::error_code ec;
      sc_bytes_ = stream_.write_now(bufs, ec);
      if (ec && ec != asio::error::would_block) return finish(false);
      if (sc_bytes_ == asio::buffer_size(bufs)) {
        if (with_body && x_->resp.file) {
          // The slices go out asynchronously: under body_timeout_ms like any other write (a
          // file read from the pool left the connection disarmed; a client that stops reading
          // would otherwise hold it, its file and a slice forever).
          arm(limits().body_timeout_ms);
          return send_file_chunk();
        }
        return finish(true);
      }
      beast::buffers_suffix<std::array<asio::const_buffer, 2>> rest(bufs);
      rest.consume(sc_bytes_);
      arm(limits().body_timeout_ms);
      return asio::async_write(stream_, rest,
                               [self = this->shared_from_this(), with_body](beast::error_code ec, std::size_t n) {
                                 self->sent(ec, n, with_body);
                               });
    }
    arm(limits().body_timeout_ms);
    asio::async_write(stream_, bufs,
                      [self = this->shared_from_this(), with_body](beast::error_code ec,
                                                                   std::size_t n) { self->sent(ec, n, with_body); });
  }

  void sent(beast::error_code ec, std::size_t n, bool with_body) {
    sc_bytes_ += n;
    if (ec) return finish(false);
    if (with_body && x_->resp.file) return send_file_chunk();
    finish(true);
  }

  // Large files: read a slice on the file pool, write it from the loop, repeat.
  void send_file_chunk() {
    FileSlice& f = *x_->resp.file;
    if (f.length == 0) return finish(true);
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kFileChunk, f.length));
    asio::post(*state_.files, [self = this->shared_from_this(), want]() mutable {
      FileSlice& f = *self->x_->resp.file;
      auto chunk = std::make_shared<std::string>(want, '\0');
      ssize_t n = ::pread(f.file->fd, chunk->data(), want, static_cast<off_t>(f.offset));
      auto& io = self->loop_.io;
      asio::post(io, [self = std::move(self), chunk, n]() mutable {
        if (n <= 0) return self->finish(false);  // file shrank: the length was promised
        // The deadline passed while no write was waiting (this slice was being read): the
        // timer cancelled nothing and will not fire again, so the answer stops here.
        if (self->timed_out_) return self->finish(false);
        chunk->resize(static_cast<std::size_t>(n));
        self->x_->resp.file->offset += static_cast<std::uint64_t>(n);
        self->x_->resp.file->length -= static_cast<std::uint64_t>(n);
        asio::async_write(self->stream_, asio::buffer(*chunk),
                          [self, chunk](beast::error_code ec, std::size_t written) {
                            self->sc_bytes_ += written;
                            if (ec) return self->finish(false);
                            self->send_file_chunk();
                          });
      });
    });
  }

  void finish(bool ok) {
    write_log();
    if (ok && keep_alive_) return read_next();
    close();
  }

  void write_log() {
    write_request_log(state_, *gen_, site_, Endpoints{s_ip_, c_ip_, s_port_},
                      RequestRecord{x_->req, x_->path, x_->outcome, x_->resp, cs_bytes_, sc_bytes_, started_, this,
                                    x_->request_id_text()},
                      x_->log_line);
  }

  void close() {
    idle_ = true;
    if constexpr (Tls) {
      arm(1000);
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        self->close_now();
      });
    } else {
      close_now();
    }
  }

  void close_now() {
    if (closed_) return;
    closed_ = true;
    idle_ = false;
    boost::system::error_code ec;
    timer_.cancel();
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
  }

  ServerState& state_;
  Loop& loop_;
  std::shared_ptr<const Generation> gen_;  // the generation this connection's requests run under
  // The one the TLS handshake ran under: the SSL object's contexts and callbacks point into it.
  std::shared_ptr<const Generation> handshake_gen_;
  const runtime::Snapshot* snap_;
  std::size_t listener_index_;
  const runtime::ListenerRuntime* listener_;
  Stream stream_;
  asio::steady_timer timer_;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool timer_waiting_ = false;
  bool timed_out_ = false;
  bool closed_ = false;
  std::size_t site_ = 0;
  tls::TlsFacts tls_;
  beast::flat_buffer buf_;
  std::size_t buf_max_ = 0;
  // One request's state, allocated when its first bytes arrive and freed before the connection
  // waits idle: an idle keep-alive connection holds only what the connection itself needs.
  // Reused: a connection going idle leaves its Exchange to the loop's spares, and the next
  // request on the loop takes it with the capacity its strings and vectors grew to.
  struct Exchange {
    std::optional<bhttp::request_parser<bhttp::string_body>> parser;  // the head
    std::unique_ptr<Discard> discard;  // a body being read and dropped
    Request req;
    Response resp;
    auth::Outcome outcome;
    std::string head;
    std::string path;  // normalised, for the log
    Routed routed;     // the request being decided
    std::string log_line;
    beast::flat_buffer spare_buffer;  // an idle connection's empty read buffer, kept for the next
    std::array<char, 40> request_id{};
    std::size_t request_id_len = 0;
    std::string_view cache_control;  // the authenticated answer's, from the configuration
    std::string_view request_id_text() const { return {request_id.data(), request_id_len}; }
    bool continued = false;  // 100 Continue already sent (before an on-demand certificate request)

    // What a request that fails before it is parsed would otherwise log or answer with, and
    // nothing of the last request's decision.
    void reset() {
      req.method.clear();
      req.target.clear();
      req.version = 11;
      req.headers.clear();
      outcome = {};
      cache_control = {};
      path.clear();
      continued = false;
      routed.state.reset();
      routed.late_facts.reset();
      routed.step_up.reset();
      routed.forward.reset();
      routed.authority = {};
      routed.backend = nullptr;
    }
  };
  // The spares of this loop (connections run on their loop's thread only). Bounded: a thousand
  // idle connections share these few rather than each holding its own.
  struct Spares {
    static constexpr std::size_t kMax = 64, kMaxBuffer = 16 * 1024;
    std::vector<std::unique_ptr<Exchange>> list;
    std::unique_ptr<Exchange> take() {
      if (list.empty()) return std::make_unique<Exchange>();
      auto x = std::move(list.back());
      list.pop_back();
      return x;
    }
    void put(std::unique_ptr<Exchange> x) {
      if (list.size() >= kMax) return;
      x->parser.reset();
      x->discard.reset();
      x->resp = Response{};  // no file held open, no body kept, by a spare
      x->reset();            // nor anything of the request's decision
      if (x->spare_buffer.capacity() > kMaxBuffer) x->spare_buffer = beast::flat_buffer();
      list.push_back(std::move(x));
    }
  };
  static Spares& spares() {
    thread_local Spares s;
    return s;
  }
  std::unique_ptr<Exchange> x_;
  std::unique_ptr<Login> login_;  // the signed response being decided (token login)
  token::CookieSession cookie_;
  std::weak_ptr<H2Session> h2_;
  AssertionCache assertion_;
  std::string s_ip_, c_ip_;
  std::uint16_t s_port_ = 0;
  bool local_client_ = false;
  bool keep_alive_ = true;
  bool idle_ = true;
  Clock::time_point started_ = Clock::now();
  std::uint64_t cs_bytes_ = 0, sc_bytes_ = 0;
};

}  // namespace

void start_connection(ServerState& state, Loop& loop, std::size_t listener_index, tcp::socket socket) {
  boost::system::error_code ec;
  std::shared_ptr<const Generation> gen = state.current.load();
  if (state.connections.load(std::memory_order_relaxed) >= gen->snap->cfg.server.limits.max_connections) {
    socket.close(ec);  // over the limit: refuse before spending a handshake on it
    return;
  }
  socket.set_option(tcp::no_delay(true), ec);
  if (gen->snap->listeners[listener_index].proxy_protocol)
    return accept_proxy_header(state, loop, listener_index, std::move(socket));
  open_connection(state, loop, listener_index, std::move(socket), std::nullopt);
}

void open_connection(ServerState& state, Loop& loop, std::size_t listener_index, tcp::socket socket,
                     const std::optional<ProxiedClient>& proxied) {
  std::shared_ptr<const Generation> gen = state.current.load();
  const runtime::ListenerRuntime& listener = gen->snap->listeners[listener_index];
  if (!listener.https) {
    std::make_shared<Connection<false>>(state, loop, gen, listener_index, nullptr, std::move(socket), proxied)->start();
    return;
  }
  // The connection starts on this generation's default route; the ClientHello hook then moves it
  // to the context of the site its SNI names.
  const auto* route = listener.default_route() ? listener.default_route() : &listener.routes.front();
  std::make_shared<Connection<true>>(state, loop, gen, listener_index, route->ctx, std::move(socket), proxied)->start();
}

}  // namespace certgate::http
