#include "http/h2_connection.hpp"

#include "http/file_cache.hpp"
#include "http/h2_proxy.hpp"
#include "http/handler.hpp"
#include "http/request_steps.hpp"
#include "http/step_up.hpp"
#include "token/session.hpp"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <unordered_map>

namespace certgate::http {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;

// One file slice per stream in memory at a time: a stream's DATA frames are at most this large,
// and a client that stops reading (or opening its flow-control window) holds no more than this
// per stream, and the write buffer once per connection.
constexpr std::size_t kFileSlice = 16 * 1024;
constexpr std::size_t kWriteBuffer = 64 * 1024;
constexpr std::size_t kReadBuffer = 16 * 1024;
constexpr int kReadsPerWake = 4;
constexpr std::int32_t kConnectionWindow = 1 << 20;
constexpr std::size_t kIdleWriteBuffer = 1024;

// RFC 9113 §8.2.2: connection-specific fields have no meaning in HTTP/2 and make clients
// treat the answer as malformed.
bool connection_specific(std::string_view name) {
  return iequals(name, "connection") || iequals(name, "keep-alive") || iequals(name, "proxy-connection") ||
         iequals(name, "transfer-encoding") || iequals(name, "upgrade");
}

class H2Connection;

struct H2Stream final : log::FieldSource {
  std::shared_ptr<H2Proxy<H2Connection>> proxy;  // forwarded to a backend
  std::int32_t id = 0;
  tls::TlsFacts* tls = nullptr;  // the connection's
  Request req;
  Routed routed;
  Response resp;
  auth::Outcome outcome;
  std::string path;
  std::array<char, 40> request_id{};
  std::size_t request_id_len = 0;
  std::string_view cache_control;  // the authenticated answer's, from the configuration
  // The token-login cookie's certificate, per stream: streams of one connection are decided
  // concurrently, each on its own cookie (a connection-wide memory would let one stream's
  // cookie replace the facts another is being decided on).
  token::CookieSession cookie;
  std::size_t header_bytes = 0, header_count = 0;
  bool saw_host = false;
  std::string authority;
  // Refused while its head was read (431, 400): answered once the head is complete.
  std::optional<auth::Verdict> refused;
  std::string refused_reason;
  bool request_ended = false;
  bool answered = false;  // a response was submitted
  bool logged = false;
  std::uint64_t cs_bytes = 0, sc_bytes = 0, body_bytes = 0;
  Clock::time_point started = Clock::now();
  // The answer's body as it goes out: the in-memory body's offset, or the file slice in hand.
  std::size_t body_offset = 0;
  std::string slice;
  std::size_t slice_offset = 0;
  bool reading_slice = false;
  // Body bytes that came while the decision waited (a need met off the loop): not consumed, so
  // the stream's window bounds them; the proxy's if the stream becomes one, else dropped once
  // the answer is out.
  std::string early_body;

  std::string request_header(std::string_view name) const override { return std::string(req.header(name)); }
  std::string response_header(std::string_view name) const override { return std::string(resp.header(name)); }
  std::string_view request_id_text() const { return {request_id.data(), request_id_len}; }
  std::string variable(std::string_view name) const override {
    return request_variable(name, *tls, decided_facts(routed, *tls).leaf.get(), true, outcome);
  }
};

class H2Connection final : public H2Session, public std::enable_shared_from_this<H2Connection> {
 public:
  explicit H2Connection(H2Start&& s)
      : state_(s.state), loop_(s.loop), gen_(std::move(s.gen)), snap_(gen_->snap.get()),
        listener_index_(s.listener_index), site_(s.site), stream_(s.stream), tls_(s.tls),
        s_ip_(std::move(s.s_ip)), c_ip_(std::move(s.c_ip)), s_port_(s.s_port), local_client_(s.local_client),
        close_(std::move(s.close)), timer_(s.loop.io) {}

  ~H2Connection() override {
    if (session_) nghttp2_session_del(session_);
  }

  void start() {
    const auto& l = limits();
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    // Rapid reset (CVE-2023-44487): streams a client resets come out of a budget refilled each
    // second; past it the session sends GOAWAY and on_frame_send closes the connection.
    nghttp2_option_set_stream_reset_rate_limit(opt, l.h2_reset_burst, l.h2_resets_per_second);
    // A proxied request body reopens the client's window only as the backend takes it (the
    // stream's window bounds what waits in memory); other bodies are consumed as they arrive.
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_session_server_new2(&session_, callbacks(), this, opt);
    nghttp2_option_del(opt);
    // Room for several streams' uploads at once: one stream whose backend is slow must not stall
    // the others' (each stream still holds at most its own 64 KiB window).
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
    // No RFC 7540 priority tree (RFC 9218 §2.1): a client cannot make the server rebuild one
    // with PRIORITY frames.
    const std::array<nghttp2_settings_entry, 3> settings{{
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, l.h2_max_concurrent_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(l.max_header_bytes)},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    }};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
    idle_since_ = Clock::now();
    schedule();
    read();
    flush();
  }

  void shutdown() override {
    if (closed_ || goaway_) return;
    goaway_ = true;
    goaway_last_ = nghttp2_session_get_last_proc_stream_id(session_);
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, goaway_last_,
                          NGHTTP2_NO_ERROR, nullptr, 0);
    flush();
  }

 private:
  const config::Limits& limits() const { return snap_->cfg.server.limits; }
  const runtime::SiteRuntime& site() const { return snap_->sites[site_]; }
  // One stream's: its request id on its pages, its own token-login cookie memory.
  ConnectionInfo info(H2Stream& s) const {
    return ConnectionInfo{*snap_,        snap_->listeners[listener_index_],
                          site(),        &tls_,
                          local_client_, state_.revocation,
                          state_.clock,  s.request_id_text(),
                          &s.cookie,     snap_->generation};
  }
  H2Stream* find(std::int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  // --- socket ------------------------------------------------------------------------------
  // Waits for bytes holding no buffer (as an idle HTTP/1.1 connection does), then reads what
  // is there into the loop's one read buffer: an idle HTTP/2 connection costs its TLS and
  // nghttp2 state only.
  void read() {
    stream_.async_wait_readable([self = shared_from_this()](error_code ec) { self->on_readable(ec); });
  }

  void on_readable(error_code ec) {
    if (closed_) return;
    if (ec) return close_now();  // the client hung up, or a deadline cancelled the wait
    thread_local std::array<std::uint8_t, kReadBuffer> buf;
    // A few reads per wake-up, then back through the loop: one busy client does not starve
    // the loop's other connections.
    for (int i = 0; i < kReadsPerWake; ++i) {
      error_code rec;
      const std::size_t n = stream_.read_some(asio::buffer(buf), rec);
      if (rec == asio::error::would_block || (!rec && n == 0)) break;
      if (rec) return close_now();
      in_session_ = true;
      const auto rv = nghttp2_session_mem_recv(session_, buf.data(), n);
      in_session_ = false;
      if (rv < 0) {
        // A flood (too many queued control answers: SETTINGS/PING floods while not reading)
        // gets nothing more; any other protocol error gets the GOAWAY nghttp2 queued, then
        // the close.
        if (rv == NGHTTP2_ERR_FLOODED) return close_now();
        failing_ = true;
        return flush();
      }
    }
    flush();
    if (!closed_ && !failing_) read();
  }

  // Not from inside nghttp2's own calls (an answer found at once, during mem_recv): the read
  // that called nghttp2 flushes when it returns.
  void flush() {
    if (closed_ || writing_ || in_session_) return;
    wbuf_.clear();
    while (wbuf_.size() < kWriteBuffer) {
      const std::uint8_t* data = nullptr;
      const auto n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) return close_now();
      if (n == 0) break;
      wbuf_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (wbuf_.empty()) {
      // Nothing in flight: an idle connection keeps no write buffer.
      if (wbuf_.capacity() > kIdleWriteBuffer) std::string().swap(wbuf_);
      const bool done = failing_ || (goaway_ && streams_.empty()) ||
                        (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_));
      if (done) return close_now();
      return schedule();
    }
    writing_ = true;
    touched_ = Clock::now();
    schedule();
    asio::async_write(stream_, asio::buffer(wbuf_), [self = shared_from_this()](error_code ec, std::size_t) {
      self->writing_ = false;
      if (self->closed_) return;
      if (ec) return self->close_now();
      self->touched_ = Clock::now();
      self->flush();
    });
  }

  // --- deadlines -----------------------------------------------------------------------------
  // Without open streams the connection is idle and closes keepalive_timeout_ms after its last
  // stream (frames such as PING do not keep it open). With streams, the client must keep the
  // exchange moving — take our bytes, send request bytes — within body_timeout_ms: a client
  // that stops reading an answer (or never opens its window) cannot hold a stream forever.
  Clock::time_point deadline() const {
    if (streams_.empty() && !writing_) return idle_since_ + std::chrono::milliseconds(limits().keepalive_timeout_ms);
    return touched_ + std::chrono::milliseconds(limits().body_timeout_ms);
  }

  void schedule() {
    if (closed_) return;
    const auto d = deadline();
    if (timer_waiting_ && timer_.expiry() <= d) return;  // wakes earlier and looks again
    timer_waiting_ = true;
    timer_.expires_at(d);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec == asio::error::operation_aborted || self->closed_) return;
      self->timer_waiting_ = false;
      if (Clock::now() < self->deadline()) return self->schedule();
      if (self->streams_.empty() && !self->writing_) {
        // Idle: say goodbye properly (the client then knows no request was lost).
        self->goaway_ = true;
        self->goaway_last_ = nghttp2_session_get_last_proc_stream_id(self->session_);
        nghttp2_submit_goaway(self->session_, NGHTTP2_FLAG_NONE, self->goaway_last_,
                              NGHTTP2_NO_ERROR, nullptr, 0);
        self->flush();
        // Not even the GOAWAY gets out: the client reads nothing at all.
        if (!self->closed_) self->touched_ = Clock::now(), self->schedule();
        return;
      }
      self->close_now();
    });
  }

  void close_now() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    // Answers cut short are logged as far as they went, as over HTTP/1.1.
    for (auto& [id, s] : streams_) {
      if (s->proxy) s->proxy->cancel();
      if (s->answered && !s->logged) write_log(*s);
    }
    streams_.clear();
    close_();
  }

  // --- nghttp2 callbacks ---------------------------------------------------------------------
  static nghttp2_session_callbacks* callbacks() {
    static nghttp2_session_callbacks* cbs = [] {
      nghttp2_session_callbacks* c = nullptr;
      nghttp2_session_callbacks_new(&c);
      nghttp2_session_callbacks_set_on_begin_headers_callback(c, on_begin_headers);
      nghttp2_session_callbacks_set_on_header_callback(c, on_header);
      nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_frame_recv);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_data_chunk);
      nghttp2_session_callbacks_set_on_stream_close_callback(c, on_stream_close);
      nghttp2_session_callbacks_set_on_frame_send_callback(c, on_frame_send);
      return c;
    }();
    return cbs;
  }
  static H2Connection& self_of(void* p) { return *static_cast<H2Connection*>(p); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* p) {
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto& c = self_of(p);
    auto s = std::make_unique<H2Stream>();
    s->id = f->hd.stream_id;
    s->tls = &c.tls_;
    s->req.version = 20;
    s->request_id_len = RequestIds::mine().next(s->request_id);
    c.streams_.emplace(s->id, std::move(s));
    c.touched_ = Clock::now();
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* n, std::size_t nlen,
                       const std::uint8_t* v, std::size_t vlen, std::uint8_t, void* p) {
    auto& c = self_of(p);
    H2Stream* s = c.find(f->hd.stream_id);
    if (!s) return 0;
    const std::string_view name(reinterpret_cast<const char*>(n), nlen);
    const std::string_view value(reinterpret_cast<const char*>(v), vlen);
    // RFC 9113 §6.5.2's accounting (32 octets per field): an HPACK bomb — a large entry in the
    // dynamic table referenced again and again — is counted at its decoded size and refused
    // with 431 without being kept.
    s->header_bytes += nlen + vlen + 32;
    s->cs_bytes += nlen + vlen + 2;
    if (s->refused) return 0;
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;  // trailers: counted, not kept
    if (s->header_bytes > c.limits().max_header_bytes) {
      s->refused = auth::Verdict::Http431_HeadersTooLarge;
      s->refused_reason = "the request head is larger than max_header_bytes (" +
                          std::to_string(c.limits().max_header_bytes) + ")";
      return 0;
    }
    if (!name.empty() && name.front() == ':') {
      if (name == ":method") s->req.method.assign(value);
      else if (name == ":path") s->req.target.assign(value);
      else if (name == ":authority") s->authority.assign(value);
      return 0;
    }
    if (++s->header_count > c.limits().max_headers) {
      s->refused = auth::Verdict::Http431_HeadersTooLarge;
      s->refused_reason = "the request has more than max_headers (" + std::to_string(c.limits().max_headers) +
                          ") header fields";
      return 0;
    }
    if (name == "host") {
      s->saw_host = true;
    } else if (name == "cookie") {
      // RFC 9113 §8.2.3: cookie crumbs are one Cookie field again for everything downstream.
      for (auto& h : s->req.headers)
        if (h.name == "cookie") {
          h.value.append("; ").append(value);
          return 0;
        }
    }
    s->req.headers.push_back(Header{std::string(name), std::string(value)});
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* p) {
    auto& c = self_of(p);
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    H2Stream* s = c.find(f->hd.stream_id);
    if (!s) return 0;
    c.touched_ = Clock::now();
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
      s->request_ended = true;
      if (s->proxy) s->proxy->on_end();
    }
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    // Our GOAWAY told the client that streams after goaway_last_ are not processed, so it may
    // retry them elsewhere; one that came while that GOAWAY still waited to go out must not be
    // decided or forwarded (a POST would reach the backend twice).
    if (c.goaway_ && s->id > c.goaway_last_) {
      nghttp2_submit_rst_stream(c.session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    c.dispatch(*s);
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t id, const std::uint8_t* data,
                           std::size_t len, void* p) {
    auto& c = self_of(p);
    H2Stream* s = c.find(id);
    if (!s) return nghttp2_session_consume(session, id, len), 0;
    s->cs_bytes += len;
    s->body_bytes += len;
    if (s->body_bytes > c.limits().max_body_bytes) {
      nghttp2_session_consume(c.session_, id, len);
      if (s->proxy) s->proxy->cancel();
      if (!s->answered)
        c.respond(*s, c.refusal(*s, auth::Verdict::Http413_BodyTooLarge, "the request body is larger than max_body_bytes"));
      else
        nghttp2_submit_rst_stream(c.session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      return 0;
    }
    if (s->proxy && !s->answered) {
      s->proxy->on_data(data, len);
      return 0;
    }
    if (!s->answered) {
      s->early_body.append(reinterpret_cast<const char*>(data), len);
      return 0;
    }
    // Nothing else served here reads a request body: it is dropped as it comes, the window
    // kept open.
    nghttp2_session_consume(c.session_, id, len);
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t, void* p) {
    auto& c = self_of(p);
    auto it = c.streams_.find(id);
    if (it == c.streams_.end()) return 0;
    nghttp2_session_consume_connection(c.session_, it->second->early_body.size());
    if (auto& proxy = it->second->proxy) {
      // Body bytes the backend never took still hold the connection's window.
      nghttp2_session_consume_connection(c.session_, proxy->unconsumed());
      proxy->cancel();
    }
    if (it->second->answered && !it->second->logged) c.write_log(*it->second);
    c.streams_.erase(it);
    if (c.streams_.empty()) c.idle_since_ = Clock::now();
    return 0;
  }

  static int on_frame_send(nghttp2_session* session, const nghttp2_frame* f, void* p) {
    auto& c = self_of(p);
    if (f->hd.type == NGHTTP2_GOAWAY) {
      c.goaway_ = true;
      // A GOAWAY for an error (a flood, a protocol violation, too many resets) ends the
      // connection once it is out; a graceful one lets the open streams finish.
      if (f->goaway.error_code != NGHTTP2_NO_ERROR) c.failing_ = true;
      return 0;
    }
    H2Stream* s = c.find(f->hd.stream_id);
    if (!s) return 0;
    s->sc_bytes += f->hd.length + 9;
    if (f->hd.type == NGHTTP2_HEADERS && !s->early_body.empty()) {
      nghttp2_session_consume(session, s->id, s->early_body.size());
      std::string().swap(s->early_body);
    }
    // The answer is complete while the client is still sending a body nobody reads: RFC 9113
    // §8.1 lets the server end the stream with NO_ERROR.
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        !s->request_ended)
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    return 0;
  }

  // --- one request -------------------------------------------------------------------------
  Response refusal(H2Stream& s, auth::Verdict answer, std::string reason) {
    return protocol_error(info(s), answer, std::move(reason), s.req.header("Accept"));
  }

  void dispatch(H2Stream& s) {
    s.started = Clock::now();
    if (state_.stopping.load(std::memory_order_relaxed)) shutdown();
    if (s.refused) return respond(s, refusal(s, *s.refused, std::move(s.refused_reason)));
    // :authority stands for Host (RFC 9113 §8.3.1); both present, they must agree.
    if (!s.authority.empty()) {
      if (s.saw_host && !iequals(s.req.header("Host"), s.authority))
        return respond(s, refusal(s, auth::Verdict::Http400_BadRequest, "the request's :authority and Host differ"));
      if (!s.saw_host) s.req.headers.push_back(Header{"host", s.authority});
    }
    if (s.req.target.size() > limits().max_url_bytes)
      return respond(s, refusal(s, auth::Verdict::Http414_UrlTooLong, "the request target is longer than max_url_bytes (" +
                                                                          std::to_string(limits().max_url_bytes) + ")"));
    std::uint64_t announced = 0;
    const std::string_view length = s.req.header("Content-Length");
    if (!length.empty() && std::from_chars(length.data(), length.data() + length.size(), announced).ec == std::errc() &&
        announced > limits().max_body_bytes)
      return respond(s, refusal(s, auth::Verdict::Http413_BodyTooLarge, "the request body (" + std::string(length) +
                                                                            " bytes) is larger than max_body_bytes (" +
                                                                            std::to_string(limits().max_body_bytes) + ")"));
    if (!follow_reload())
      return respond(s, refusal(s, auth::Verdict::Http421_MisdirectedRequest,
                                "the configuration was reloaded and site \"" + site().cfg.name +
                                    "\" is no longer served on this address; open a new connection"));
    on_handled(s, handle(info(s), s.req, s.routed));
  }

  // After a reload this stream is decided under the new generation, and GOAWAY asks the client
  // to open a new connection (a new handshake, under the new trust) for the next ones.
  bool follow_reload() {
    if (state_.generation.load(std::memory_order_acquire) == snap_->generation) return true;
    std::shared_ptr<const Generation> next = state_.current.load();
    auto found = site_after_reload(*next->snap, listener_index_, site().cfg.name);
    shutdown();
    if (!found) return false;
    // Streams decided under the older generation may still be in flight (a proxy, a need, a
    // file read) and read its sites and backends; each of those holds this connection, so the
    // generation stays while the connection does (not only while the HTTP/1.1 connection that
    // started this session happens to hold the first one).
    retired_.push_back(std::move(gen_));
    gen_ = std::move(next);
    snap_ = gen_->snap.get();
    site_ = *found;
    tls_.forget_decisions();
    assertion_.forget();  // the signing key may have changed
    return true;
  }

  void on_handled(H2Stream& s, Handled h) {
    if (h.need == pipeline::Need::Certificate) return ask_for_certificate(s);
    if (h.need != pipeline::Need::None) {
      meet_need(state_, loop_, info(s), *s.routed.state, h.need,
                [self = shared_from_this(), id = s.id](NeedMet met) {
                  H2Stream* s = self->find(id);
                  if (!s || self->closed_) return;  // reset by the client meanwhile
                  if (!record_need(*s->routed.state, std::move(met)))
                    self->respond(*s, password_busy(self->info(*s), s->req.header("Accept")));
                  else
                    self->on_handled(*s, resume(self->info(*s), s->req, s->routed));
                  self->flush();
                });
      return;
    }
    if (h.single_use) {
      auto shared = std::make_shared<Handled>(std::move(h));
      const Handled::SingleUse op = *shared->single_use;
      run_single_use(state_, loop_, op, [self = shared_from_this(), id = s.id, shared](state::Result r) {
        H2Stream* s = self->find(id);
        if (!s || self->closed_) return;
        step_up_after_store(self->info(*s), s->req, *shared, r.status, r.error);
        self->on_handled(*s, std::move(*shared));
        self->flush();
      });
      return;
    }
    // The token-login endpoints read and answer a request body on the HTTP/1.1 connection
    // (docs/token-login.md): over HTTP/2 the client is told to retry them over HTTP/1.1.
    if (h.token) return require_http11(s);
    s.path = std::move(h.path);
    s.outcome = std::move(h.outcome);
    s.cache_control = h.cache_control;
    if (h.proxy) return start_proxy(s, std::move(*h.proxy));
    if (!h.static_job) return respond(s, std::move(h.response));
    if (auto hit = cached_file(*h.static_job, state_.clock->steady_ms())) return respond(s, std::move(*hit));
    read_static(state_, loop_, std::move(*h.static_job), [self = shared_from_this(), id = s.id](Response r) {
      H2Stream* s = self->find(id);
      if (!s || self->closed_) return;
      self->respond(*s, finish_static(self->info(*s), std::move(r), s->req.header("Accept")));
      self->flush();
    });
  }

  // Need::Certificate (docs/on-demand.md): HTTP/2 forbids renegotiation and post-handshake
  // authentication (RFC 9113 §9.2.3, RFC 8740), so a stream's certificate comes from a step-up
  // where the site has [sites.step_up] (its cookie, else the redirect), and otherwise the
  // client is told to retry over HTTP/1.1, where the certificate can be asked for.
  void ask_for_certificate(H2Stream& s) {
    if (site().step_up_key)
      return on_handled(s, step_up_or_refuse(info(s), s.req, s.routed,
                                             "HTTP/2 cannot ask for a certificate after the handshake"));
    require_http11(s);
  }

  // RST_STREAM HTTP_1_1_REQUIRED (RFC 9113 §7): curl and browsers send the request again on a
  // new HTTP/1.1 connection. Not an answer, so no W3C line: the retry gets one.
  void require_http11(H2Stream& s) {
    s.answered = true;
    s.logged = true;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_HTTP_1_1_REQUIRED);
  }

  // `streamed`: a backend's answer, whose body comes from the proxy (with or without one) and
  // whose headers carry its own length.
  void respond(H2Stream& s, Response r, std::optional<bool> streamed = std::nullopt) {
    if (s.answered) return;
    s.answered = true;
    s.resp = std::move(r);
    if (s.resp.cache_control.empty()) s.resp.cache_control = s.cache_control;
    const bool with_body = streamed ? *streamed
                                    : !s.resp.head_only && s.req.method != "HEAD" && s.resp.status != 304 &&
                                          s.resp.status != 204 && s.resp.content_length() > 0;
    // Names lower-cased (RFC 9113 §8.2.1) into one buffer sized first, so the views stay put.
    fields_.clear();
    for (const auto& h : s.resp.headers)
      if (!connection_specific(h.name)) fields_.push_back({h.name, h.value});
    if (s.resp.prepared) {
      std::string_view rest = s.resp.prepared->headers, name, value;
      while (next_prepared_header(rest, name, value))
        if (!connection_specific(name)) fields_.push_back({name, value});
    }
    std::size_t total = 0;
    for (const auto& f : fields_) total += f.name.size();
    lowered_.resize(total);
    char status[4];
    std::to_chars(status, status + 3, s.resp.status);
    char length[24];
    const auto length_end = std::to_chars(length, length + sizeof length, s.resp.content_length()).ptr;
    nv_.clear();
    const auto add = [this](std::string_view n, std::string_view v) {
      nv_.push_back(nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                               reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                               NGHTTP2_NV_FLAG_NONE});
    };
    add(":status", std::string_view(status, 3));
    add("server", "certgate");
    add("date", http_date_now());  // nghttp2 copies it (NGHTTP2_NV_FLAG_NONE)
    std::size_t at = 0;
    for (const auto& f : fields_) {
      for (std::size_t i = 0; i < f.name.size(); ++i)
        lowered_[at + i] = static_cast<char>(std::tolower(static_cast<unsigned char>(f.name[i])));
      add(std::string_view(lowered_.data() + at, f.name.size()), f.value);
      at += f.name.size();
    }
    if (!s.resp.cache_control.empty() && s.resp.header("Cache-Control").empty())
      add("cache-control", s.resp.cache_control);
    if (!streamed && s.resp.status != 304 && s.resp.status != 204)
      add("content-length", std::string_view(length, length_end - length));
    nghttp2_data_provider body{};
    body.source.ptr = &s;
    body.read_callback = read_body;
    if (nghttp2_submit_response(session_, s.id, nv_.data(), nv_.size(), with_body ? &body : nullptr) != 0)
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_INTERNAL_ERROR);
  }

  // nghttp2 asks for body bytes only while the stream's and the connection's windows are open.
  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source* source, void* p) {
    auto& c = self_of(p);
    auto& s = *static_cast<H2Stream*>(source->ptr);
    if (s.proxy) return s.proxy->read(buf, length, flags);
    if (!s.resp.file) {
      const std::string_view body = s.resp.body_bytes();
      const std::size_t n = std::min(length, body.size() - s.body_offset);
      std::memcpy(buf, body.data() + s.body_offset, n);
      s.body_offset += n;
      if (s.body_offset == body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    }
    if (s.slice_offset < s.slice.size()) {
      const std::size_t n = std::min(length, s.slice.size() - s.slice_offset);
      std::memcpy(buf, s.slice.data() + s.slice_offset, n);
      s.slice_offset += n;
      if (s.slice_offset == s.slice.size() && s.resp.file->length == 0) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    }
    if (s.resp.file->length == 0) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    if (!s.reading_slice) c.read_slice(s);
    return NGHTTP2_ERR_DEFERRED;
  }

  // The next slice of a large file, read on the file pool; the stream resumes when it is here.
  void read_slice(H2Stream& s) {
    s.reading_slice = true;
    const FileSlice& f = *s.resp.file;
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kFileSlice, f.length));
    asio::post(*state_.files, [self = shared_from_this(), id = s.id, file = f.file, offset = f.offset, want] {
      auto bytes = std::make_shared<std::string>(want, '\0');
      const ssize_t n = ::pread(file->fd, bytes->data(), want, static_cast<off_t>(offset));
      auto& io = self->loop_.io;
      asio::post(io, [self, id, bytes, n] {
        H2Stream* s = self->find(id);
        if (!s || self->closed_) return;
        s->reading_slice = false;
        if (n <= 0) {  // the file shrank: the length was promised
          nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
          return self->flush();
        }
        bytes->resize(static_cast<std::size_t>(n));
        s->slice.swap(*bytes);
        s->slice_offset = 0;
        s->resp.file->offset += static_cast<std::uint64_t>(n);
        s->resp.file->length -= static_cast<std::uint64_t>(n);
        nghttp2_session_resume_data(self->session_, id);
        self->flush();
      });
    });
  }

  void start_proxy(H2Stream& s, ProxyPlan plan) {
    const auto& fwd = site().cfg.forward;
    ForwardInput in{s.req, plan.target, plan.host, fwd, *plan.backend, site().cfg.proxy.preserve_host, c_ip_, true,
                    s.outcome, plan.leaf, plan.chain,
                    assertion_.get(site(), s.outcome, plan.leaf, decided_facts(s.routed, tls_), *state_.clock),
                    plan.strip_authorization, false, plan.own_cookies};
    std::string head = forwarded_head(in);
    std::optional<std::uint64_t> length;
    const std::string_view announced = s.req.header("Content-Length");
    std::uint64_t n = 0;
    if (!announced.empty() && std::from_chars(announced.data(), announced.data() + announced.size(), n).ec == std::errc())
      length = n;
    // The whole body came while the decision waited: its length is known. Without one the
    // backend would take those bytes, unframed, for a second request on its connection.
    if (!length && s.request_ended && !s.early_body.empty()) length = s.early_body.size();
    s.proxy = std::make_shared<H2Proxy<H2Connection>>(shared_from_this(), s.id, loop_.io, site(), snap_->generation,
                                                     std::move(plan), std::move(head), length, s.request_ended,
                                                     s.req.method == "HEAD", limits().body_timeout_ms);
    if (!s.early_body.empty()) {
      s.proxy->on_data(reinterpret_cast<const std::uint8_t*>(s.early_body.data()), s.early_body.size());
      std::string().swap(s.early_body);
    }
    s.proxy->start();
  }

 public:
  // The proxy's reports (http/h2_proxy.hpp): each finds its stream again, which may be gone.
  void proxy_head(std::int32_t id, Response r, bool body) {
    H2Stream* s = find(id);
    if (!s || closed_) return;
    respond(*s, std::move(r), body);
    flush();
  }
  void proxy_ready(std::int32_t id) {
    if (closed_ || !find(id)) return;
    nghttp2_session_resume_data(session_, id);
    flush();
  }
  void proxy_failed(std::int32_t id, ProxyResult r) {
    H2Stream* s = find(id);
    if (!s || closed_) return;
    // The stream is the connection's again: an error page is sent from memory, and body bytes
    // still coming are dropped as they arrive.
    nghttp2_session_consume(session_, id, s->proxy->unconsumed());
    s->proxy.reset();
    if (r.answered || s->answered)
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    else if (r.answer == auth::Verdict::Http408_RequestTimeout)
      respond(*s, refusal(*s, r.answer, std::move(r.reason)));
    else
      respond(*s, gateway_error(info(*s), r.answer, std::move(r.reason), s->req.header("Accept")));
    flush();
  }
  void proxy_consumed(std::int32_t id, std::size_t n) {
    if (closed_) return;
    nghttp2_session_consume(session_, id, n);
    flush();
  }

 private:
  void write_log(H2Stream& s) {
    s.logged = true;
    write_request_log(state_, *gen_, site_, Endpoints{s_ip_, c_ip_, s_port_},
                      RequestRecord{s.req, s.path, s.outcome, s.resp, s.cs_bytes, s.sc_bytes, s.started, &s,
                                    s.request_id_text()}, log_line_);
  }

  ServerState& state_;
  Loop& loop_;
  std::shared_ptr<const Generation> gen_;
  std::vector<std::shared_ptr<const Generation>> retired_;  // see follow_reload()
  const runtime::Snapshot* snap_;
  std::size_t listener_index_;
  std::size_t site_;
  tls::Stream& stream_;
  tls::TlsFacts& tls_;
  std::string s_ip_, c_ip_;
  std::uint16_t s_port_;
  bool local_client_;
  std::function<void()> close_;
  asio::steady_timer timer_;
  bool timer_waiting_ = false;
  Clock::time_point idle_since_ = Clock::now(), touched_ = Clock::now();
  nghttp2_session* session_ = nullptr;
  std::string wbuf_;
  bool writing_ = false;
  bool in_session_ = false;
  bool closed_ = false;
  bool goaway_ = false;   // no new streams: the connection ends when the open ones are done
  std::int32_t goaway_last_ = 0;  // the last stream our GOAWAY said is processed
  bool failing_ = false;  // a fatal error: flush what nghttp2 queued (its GOAWAY), then close
  std::unordered_map<std::int32_t, std::unique_ptr<H2Stream>> streams_;
  struct FieldView {
    std::string_view name, value;
  };
  std::vector<FieldView> fields_;
  std::string lowered_;
  std::vector<nghttp2_nv> nv_;
  std::string log_line_;
  AssertionCache assertion_;
};

}  // namespace

std::shared_ptr<H2Session> start_h2(H2Start start) {
  auto c = std::make_shared<H2Connection>(std::move(start));
  c->start();
  return c;
}

}  // namespace certgate::http
