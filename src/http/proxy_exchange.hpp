#pragma once
// One request forwarded to a backend and its answer streamed back: bodies flow through fixed
// 64 KiB buffers both ways (never whole in memory), a WebSocket upgrade becomes a byte tunnel,
// an unreachable backend is 502.3 and a silent one 504. Included by http/connection.cpp only.
#include "http/backend_connect.hpp"
#include "http/backend_stream.hpp"
#include "http/forward.hpp"
#include "http/handler.hpp"
#include "runtime/snapshot.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <fmt/format.h>

#include <array>
#include <functional>

namespace certgate::http {

template <class ClientStream>
class ProxyExchange : public std::enable_shared_from_this<ProxyExchange<ClientStream>>,
                      BackendConnecting<ProxyExchange<ClientStream>> {
  friend BackendConnecting<ProxyExchange<ClientStream>>;
  using Connecting = BackendConnecting<ProxyExchange<ClientStream>>;
  using Connecting::backend_name;
  using Connecting::connect;
  using Connecting::fail_connect;
  using tcp = boost::asio::ip::tcp;
  using ReqParser = boost::beast::http::request_parser<boost::beast::http::buffer_body>;
  using ResParser = boost::beast::http::response_parser<boost::beast::http::buffer_body>;
  using Clock = std::chrono::steady_clock;
  using ec_t = boost::beast::error_code;
  static constexpr std::size_t kChunk = 64 * 1024;
  static constexpr int kMaxInterim = 16;

 public:
  ProxyExchange(ClientStream& client, boost::beast::flat_buffer& client_buf,
                std::unique_ptr<ReqParser> request, boost::asio::io_context& io,
                const runtime::SiteRuntime& site, std::uint64_t generation, ProxyPlan plan, std::string head,
                int client_version, bool head_request, bool expect_continue, std::uint32_t body_timeout_ms,
                std::function<void(ProxyResult)> done)
      : client_(client), client_buf_(client_buf), req_(std::move(request)), io_(io), site_(site),
        generation_(generation), plan_(std::move(plan)), head_(std::move(head)), client_version_(client_version),
        head_request_(head_request), expect_continue_(expect_continue), body_timeout_ms_(body_timeout_ms),
        done_(std::move(done)),
        timer_(io), resolver_(io) {}

  void start() {
    // The framing goes into the head once: a retry on a fresh connection sends the same head
    // (appended again, the backend read the second Content-Length line as the body and the
    // client's body as the next request on that connection).
    if (auto len = req_->content_length()) head_ += "Content-Length: " + std::to_string(*len) + "\r\n";
    else if (req_->chunked()) head_ += "Transfer-Encoding: chunked\r\n", chunked_request_ = true;
    head_ += "\r\n";
    // A trailer section is parsed into header fields once it is whole in this buffer.
    backend_buf_.max_size(config::kMaxHeadBytes);
    if (auto idle = take_idle(pool_key())) {
      backend_ = std::move(idle);
      reused_ = true;
      return send_head();
    }
    connect();
  }

 private:
  const config::Proxy& cfg() const { return site_.cfg.proxy; }
  PoolKey pool_key() const { return {generation_, site_.index, plan_.backend_key}; }

  void arm(std::uint32_t ms) {
    timed_out_ = false;
    timer_.expires_after(std::chrono::milliseconds(ms));
    timer_.async_wait([self = this->shared_from_this(), seq = ++arm_seq_](ec_t ec) {
      // A stale expiry (re-armed, tunnel opened or exchange finished since) must not cancel
      // what the client connection does next.
      if (ec || seq != self->arm_seq_) return;
      self->timed_out_ = true;
      self->resolver_.cancel();
      if (self->backend_) self->backend_->cancel();
      if (self->connecting_) self->connecting_->cancel();
      // The exchange may be waiting on the client instead (a body that stopped coming, an
      // answer it stopped reading): that wait holds a backend connection too.
      boost::system::error_code ignored;
      boost::beast::get_lowest_layer(self->client_).cancel(ignored);
    });
  }

  // --- request ----------------------------------------------------------------------------
  void send_head() {
    arm(cfg().read_timeout_ms);
    boost::asio::async_write(*backend_, boost::asio::buffer(head_), [self = this->shared_from_this()](ec_t ec, std::size_t) {
      if (ec) return self->backend_write_failed(ec);
      if (self->req_->is_done()) return self->end_request_body();
      if (self->expect_continue_) {
        static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        return boost::asio::async_write(self->client_, boost::asio::buffer(kContinue), [self](ec_t ec, std::size_t) {
          if (ec) return self->abort();
          self->pump_request();
        });
      }
      self->pump_request();
    });
  }

  // A pooled connection the backend closed meanwhile: try once more on a fresh one.
  void backend_write_failed(ec_t ec) {
    if (reused_ && !body_started_) {
      reused_ = false;
      backend_->close();
      backend_.reset();
      return connect();
    }
    fail_connect(ec);
  }

  // The whole body must arrive within body_timeout_ms, as for any request: a client trickling
  // it would otherwise hold a backend connection (a backend thread) for as long as it likes.
  void pump_request() {
    if (!body_started_) body_deadline_ = Clock::now() + std::chrono::milliseconds(body_timeout_ms_);
    body_started_ = true;
    req_->get().body().data = in_.data();
    req_->get().body().size = in_.size();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(body_deadline_ - Clock::now()).count();
    if (left <= 0) return body_timeout();
    arm(static_cast<std::uint32_t>(std::min<std::int64_t>(left, cfg().read_timeout_ms)));
    boost::beast::http::async_read_some(client_, client_buf_, *req_, [self = this->shared_from_this()](ec_t ec, std::size_t) {
      if (ec == boost::beast::http::error::need_buffer) ec = {};
      if (ec && self->timed_out_) return self->body_timeout();
      if (ec) return self->abort();
      std::size_t n = self->in_.size() - self->req_->get().body().size;
      self->write_request_chunk(n);
    });
  }

  void write_request_chunk(std::size_t n) {
    auto next = [self = this->shared_from_this()](ec_t ec, std::size_t) {
      if (ec) return self->fail_connect(ec);
      if (self->req_->is_done()) return self->end_request_body();
      self->pump_request();
    };
    if (n == 0) return next({}, 0);
    if (chunked_request_) {
      frame_ = fmt::format("{:x}\r\n", n);
      std::array<boost::asio::const_buffer, 3> b{boost::asio::buffer(frame_), boost::asio::buffer(in_.data(), n),
                                                 boost::asio::buffer("\r\n", 2)};
      return boost::asio::async_write(*backend_, b, next);
    }
    boost::asio::async_write(*backend_, boost::asio::buffer(in_.data(), n), next);
  }

  void end_request_body() {
    if (!chunked_request_) return read_response_head();
    boost::asio::async_write(*backend_, boost::asio::buffer("0\r\n\r\n", 5), [self = this->shared_from_this()](ec_t ec, std::size_t) {
      if (ec) return self->fail_connect(ec);
      self->read_response_head();
    });
  }

  // --- response ---------------------------------------------------------------------------
  // `interim`: how many 1xx answers came before this head (they share one read deadline).
  void read_response_head(int interim = 0) {
    res_.emplace();
    res_->header_limit(static_cast<std::uint32_t>(config::kMaxHeadBytes));
    res_->body_limit(boost::none);  // streamed through a fixed buffer: no size to bound
    if (head_request_) res_->skip(true);
    if (interim == 0) arm(cfg().read_timeout_ms);
    boost::beast::http::async_read_header(*backend_, backend_buf_, *res_, [self = this->shared_from_this(), interim](ec_t ec, std::size_t) {
      if (ec) {
        if (self->timed_out_) {
          ProxyResult r;
          r.answer = auth::Verdict::Http504_BackendTimeout;
          r.reason = "the backend " + self->backend_name() + " sent no answer within read_timeout_ms";
          self->backend_->close();
          return self->finish(std::move(r));
        }
        return self->invalid_answer("sent no valid answer: " + ec.message());
      }
      const unsigned status = self->res_->get().result_int();
      if (status == 101 && !self->plan_.websocket)
        return self->invalid_answer("switched protocols (101) although no upgrade was asked for");
      // After 101 the client's bytes go to the backend unchecked: a 101 that an application
      // merely relayed (a status it was given) would let the client send raw HTTP requests,
      // with identity headers of its own, past every policy. Only a real WebSocket handshake,
      // proven by the accept value, opens the tunnel.
      if (status == 101 && self->res_->get()["Sec-WebSocket-Accept"] != self->plan_.websocket_accept)
        return self->invalid_answer("answered a WebSocket upgrade with 101 but without its Sec-WebSocket-Accept");
      if (status >= 100 && status < 200 && status != 101) {
        // Interim answers (100, 102, 103) precede the final one on the same connection: ending
        // the exchange on them would pool a connection whose final answer is still to come,
        // and the next request on it, anyone's, would receive it. They are dropped (a client
        // cannot use 100 from here: certgate answered Expect itself), a flood of them is 502.
        if (interim + 1 >= kMaxInterim)
          return self->invalid_answer("sent more than " + std::to_string(kMaxInterim - 1) + " interim (1xx) answers");
        return self->read_response_head(interim + 1);
      }
      self->send_response_head();
    });
  }

  void invalid_answer(const std::string& what) {
    ProxyResult r;
    r.answer = auth::Verdict::Http502_3_BackendInvalidAnswer;
    r.reason = "the backend " + backend_name() + " " + what;
    backend_->close();
    finish(std::move(r));
  }

  void send_response_head() {
    auto& msg = res_->get();
    const int status = static_cast<int>(msg.result_int());
    result_.status = status;
    const bool upgrade = status == 101 && plan_.websocket;
    const bool no_body = head_request_ || status == 204 || status == 304;
    keep_client_ = !upgrade && client_version_ >= 11;
    std::string head = fmt::format("HTTP/1.1 {} {}\r\n", status, std::string(msg.reason()));
    const std::string connection(msg[boost::beast::http::field::connection]);
    for (const auto& f : msg) {
      const std::string name(f.name_string());
      if (!upgrade && is_hop_by_hop(name, connection)) continue;
      if (upgrade && (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding"))) continue;
      head += name + ": " + std::string(f.value()) + "\r\n";
      result_.headers.push_back({name, std::string(f.value())});
    }
    if (!upgrade && !no_body) {
      if (auto len = res_->content_length()) {
        head += "Content-Length: " + std::to_string(*len) + "\r\n";
      } else if (client_version_ >= 11) {
        head += "Transfer-Encoding: chunked\r\n";
        chunked_response_ = true;
      } else {
        keep_client_ = false;  // HTTP/1.0 and no length: the end is the close
      }
    } else if (head_request_) {
      if (auto len = res_->content_length()) head += "Content-Length: " + std::to_string(*len) + "\r\n";
    }
    // The backend knows its content; where it says nothing, an authenticated answer is still
    // this user's alone and must be revalidated (the site's authenticated_cache_control).
    if (!upgrade && !plan_.cache_control.empty() && msg[boost::beast::http::field::cache_control].empty())
      head += "Cache-Control: " + std::string(plan_.cache_control) + "\r\n";
    if (!upgrade) head += keep_client_ ? "" : "Connection: close\r\n";
    head += "\r\n";
    out_head_ = std::move(head);
    result_.answered = true;
    boost::asio::async_write(client_, boost::asio::buffer(out_head_), [self = this->shared_from_this(), upgrade, no_body](ec_t ec, std::size_t n) {
      self->result_.sent += n;
      if (ec) return self->abort();
      if (upgrade) return self->tunnel();
      if (no_body || self->res_->is_done()) return self->response_done();
      self->pump_response();
    });
  }

  void pump_response() {
    res_->get().body().data = out_.data();
    res_->get().body().size = out_.size();
    arm(cfg().read_timeout_ms);
    boost::beast::http::async_read_some(*backend_, backend_buf_, *res_, [self = this->shared_from_this()](ec_t ec, std::size_t) {
      if (ec == boost::beast::http::error::need_buffer) ec = {};
      if (ec) return self->abort();
      std::size_t n = self->out_.size() - self->res_->get().body().size;
      self->write_response_chunk(n);
    });
  }

  void write_response_chunk(std::size_t n) {
    auto next = [self = this->shared_from_this()](ec_t ec, std::size_t written) {
      self->result_.sent += written;
      if (ec) return self->abort();
      if (self->res_->is_done()) return self->response_done();
      self->pump_response();
    };
    if (n == 0) return next({}, 0);
    if (chunked_response_) {
      frame_ = fmt::format("{:x}\r\n", n);
      std::array<boost::asio::const_buffer, 3> b{boost::asio::buffer(frame_), boost::asio::buffer(out_.data(), n),
                                                 boost::asio::buffer("\r\n", 2)};
      return boost::asio::async_write(client_, b, next);
    }
    boost::asio::async_write(client_, boost::asio::buffer(out_.data(), n), next);
  }

  void response_done() {
    auto complete = [self = this->shared_from_this()](ec_t ec, std::size_t n) {
      self->result_.sent += n;
      if (ec) return self->abort();
      self->timer_.cancel();
      if (self->res_->keep_alive() && self->req_->is_done())  // the parser: false when the end was the close
        put_idle(self->pool_key(), std::move(self->backend_), self->cfg().max_idle);
      else
        self->backend_->close();
      self->result_.client_reusable = self->keep_client_;
      self->finish(std::move(self->result_));
    };
    if (chunked_response_) return boost::asio::async_write(client_, boost::asio::buffer("0\r\n\r\n", 5), complete);
    complete({}, 0);
  }

  // --- WebSocket: after 101, bytes both ways until either side closes ----------------------
  void tunnel() {
    ++arm_seq_;
    timer_.cancel();
    // Bytes the parsers already buffered belong to the other side.
    if (backend_buf_.size() > 0) {
      auto pending = std::make_shared<std::string>(boost::beast::buffers_to_string(backend_buf_.data()));
      backend_buf_.consume(backend_buf_.size());
      boost::asio::async_write(client_, boost::asio::buffer(*pending), [self = this->shared_from_this(), pending](ec_t ec, std::size_t) {
        if (ec) return self->abort();
        self->tunnel();
      });
      return;
    }
    if (client_buf_.size() > 0) {
      auto pending = std::make_shared<std::string>(boost::beast::buffers_to_string(client_buf_.data()));
      client_buf_.consume(client_buf_.size());
      boost::asio::async_write(*backend_, boost::asio::buffer(*pending), [self = this->shared_from_this(), pending](ec_t ec, std::size_t) {
        if (ec) return self->abort();
        self->tunnel();
      });
      return;
    }
    client_to_backend();
    backend_to_client();
  }

  void client_to_backend() {
    client_.async_read_some(boost::asio::buffer(in_), [self = this->shared_from_this()](ec_t ec, std::size_t n) {
      if (ec) return self->end_tunnel();
      boost::asio::async_write(*self->backend_, boost::asio::buffer(self->in_.data(), n), [self](ec_t ec, std::size_t) {
        if (ec) return self->end_tunnel();
        self->client_to_backend();
      });
    });
  }

  void backend_to_client() {
    backend_->async_read_some(boost::asio::buffer(out_), [self = this->shared_from_this()](ec_t ec, std::size_t n) {
      if (ec) return self->end_tunnel();
      boost::asio::async_write(self->client_, boost::asio::buffer(self->out_.data(), n), [self](ec_t ec, std::size_t w) {
        self->result_.sent += w;
        if (ec) return self->end_tunnel();
        self->backend_to_client();
      });
    });
  }

  void end_tunnel() {
    if (tunnel_ended_) return;
    tunnel_ended_ = true;
    backend_->close();
    boost::system::error_code ignored;
    boost::beast::get_lowest_layer(client_).cancel(ignored);
    result_.client_reusable = false;
    finish(std::move(result_));
  }

  // --- endings -----------------------------------------------------------------------------
  void body_timeout() {
    backend_->close();
    ProxyResult r;
    r.answer = auth::Verdict::Http408_RequestTimeout;
    r.reason = "the request body did not arrive within body_timeout_ms (or made no progress within read_timeout_ms)";
    finish(std::move(r));
  }

  void abort() {  // mid-stream failure: nothing sensible can be sent; close both sides
    if (backend_) backend_->close();
    result_.client_reusable = false;
    finish(std::move(result_));
  }

  void finish(ProxyResult r) {
    if (finished_) return;
    finished_ = true;
    ++arm_seq_;
    timer_.cancel();
    if (!r.answered && !req_->is_done()) r.client_reusable = false;  // request body left unread
    done_(std::move(r));
  }

  ClientStream& client_;
  boost::beast::flat_buffer& client_buf_;
  std::unique_ptr<ReqParser> req_;
  boost::asio::io_context& io_;
  const runtime::SiteRuntime& site_;
  std::uint64_t generation_;
  ProxyPlan plan_;
  std::string head_, out_head_, frame_;
  int client_version_;
  bool head_request_, expect_continue_;
  std::uint32_t body_timeout_ms_;
  std::uint64_t arm_seq_ = 0;
  Clock::time_point body_deadline_;
  std::function<void(ProxyResult)> done_;
  boost::asio::steady_timer timer_;
  tcp::resolver resolver_;
  std::unique_ptr<tcp::socket> connecting_;
  std::unique_ptr<BackendStream> backend_;
  boost::beast::flat_buffer backend_buf_;
  std::optional<ResParser> res_;
  std::array<char, kChunk> in_{}, out_{};
  ProxyResult result_;
  bool reused_ = false, body_started_ = false, chunked_request_ = false, chunked_response_ = false;
  bool keep_client_ = false, timed_out_ = false, finished_ = false, tunnel_ended_ = false;
};

}  // namespace certgate::http
