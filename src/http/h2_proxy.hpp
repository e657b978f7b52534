#pragma once
// One HTTP/2 stream forwarded to a backend (the backend side stays HTTP/1.1 and pooled). The
// request body flows to the backend as the client sends it, and the client's flow-control
// window reopens only for bytes the backend took; the answer's body flows back through one
// 16 KiB buffer as the client's windows allow. Included by http/h2_connection.cpp only: `Conn` is
// its connection, which it tells about the answer through proxy_head / proxy_ready /
// proxy_failed / proxy_consumed (each looks the stream up again: it may be gone).
#include "http/backend_connect.hpp"
#include "http/forward.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <nghttp2/nghttp2.h>

#include <fmt/format.h>

#include <array>
#include <cstring>

namespace certgate::http {

template <class Conn>
class H2Proxy : public std::enable_shared_from_this<H2Proxy<Conn>>, BackendConnecting<H2Proxy<Conn>> {
  friend BackendConnecting<H2Proxy<Conn>>;
  using Connecting = BackendConnecting<H2Proxy<Conn>>;
  using Connecting::connect;
  using Connecting::fail_connect;
  using tcp = boost::asio::ip::tcp;
  using ec_t = boost::beast::error_code;
  using ResParser = boost::beast::http::response_parser<boost::beast::http::buffer_body>;
  static constexpr std::size_t kChunk = 16 * 1024;
  static constexpr int kMaxInterim = 16;

 public:
  H2Proxy(std::shared_ptr<Conn> conn, std::int32_t id, boost::asio::io_context& io, const runtime::SiteRuntime& site,
          std::uint64_t generation, ProxyPlan plan, std::string head, std::optional<std::uint64_t> length,
          bool request_ended, bool head_request, std::uint32_t body_timeout_ms)
      : conn_(std::move(conn)), id_(id), io_(io), site_(site), generation_(generation), plan_(std::move(plan)),
        head_(std::move(head)), in_ended_(request_ended), head_request_(head_request),
        body_timeout_ms_(body_timeout_ms), timer_(io), resolver_(io) {
    if (length) head_ += "Content-Length: " + std::to_string(*length) + "\r\n";
    else if (!request_ended) head_ += "Transfer-Encoding: chunked\r\n", chunked_ = true;
    head_ += "\r\n";
  }

  void start() {
    backend_buf_.max_size(config::kMaxHeadBytes);
    if (auto idle = take_idle(pool_key())) {
      backend_ = std::move(idle);
      reused_ = true;
      return send_head();
    }
    connect();
  }

  // Request body bytes from the client (held until the backend took them: the stream's window
  // bounds them).
  void on_data(const std::uint8_t* data, std::size_t n) {
    in_.append(reinterpret_cast<const char*>(data), n);
    pump_request();
  }
  void on_end() {
    in_ended_ = true;
    pump_request();
  }

  // The answer's body for nghttp2's read callback.
  ssize_t read(std::uint8_t* buf, std::size_t length, std::uint32_t* flags) {
    if (out_off_ < out_len_) {
      const std::size_t n = std::min(length, out_len_ - out_off_);
      std::memcpy(buf, out_.data() + out_off_, n);
      out_off_ += n;
      if (out_off_ == out_len_) {
        if (res_done_) {
          *flags |= NGHTTP2_DATA_FLAG_EOF;
          response_done();
        } else {
          pump_response();
        }
      }
      return static_cast<ssize_t>(n);
    }
    if (res_done_) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      response_done();
      return 0;
    }
    pump_response();
    return NGHTTP2_ERR_DEFERRED;
  }

  // Request body bytes received but not yet taken by the backend.
  std::size_t unconsumed() const { return in_.size() + (writing_ ? sending_.size() : 0); }

  // The stream or the connection ended: nothing more is sent either way.
  void cancel() {
    if (finished_) return;
    finished_ = true;
    ++arm_seq_;
    timer_.cancel();
    resolver_.cancel();
    if (backend_) backend_->close();
    if (connecting_) connecting_->cancel();
  }

 private:
  const config::Proxy& cfg() const { return site_.cfg.proxy; }
  PoolKey pool_key() const { return {generation_, site_.index, plan_.backend_key}; }

  void arm(std::uint32_t ms) {
    timed_out_ = false;
    timer_.expires_after(std::chrono::milliseconds(ms));
    timer_.async_wait([self = this->shared_from_this(), seq = ++arm_seq_](ec_t ec) {
      if (ec || seq != self->arm_seq_ || self->finished_) return;
      self->timed_out_ = true;
      // Waiting on the client's body: 408. Else the backend's operation fails as timed out.
      if (self->waiting_client_) return self->fail(auth::Verdict::Http408_RequestTimeout,
                                                   "the request body did not arrive within body_timeout_ms");
      self->resolver_.cancel();
      if (self->backend_) self->backend_->cancel();
      if (self->connecting_) self->connecting_->cancel();
    });
  }

  // --- request ---------------------------------------------------------------------------
  void send_head() {
    arm(cfg().read_timeout_ms);
    boost::asio::async_write(*backend_, boost::asio::buffer(head_), [self = this->shared_from_this()](ec_t ec, std::size_t) {
      if (self->finished_) return;
      if (ec) return self->backend_write_failed(ec);
      self->head_sent_ = true;
      // The whole body within body_timeout_ms, as over HTTP/1.1.
      self->arm(self->body_timeout_ms_);
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

  void pump_request() {
    if (!head_sent_ || writing_ || finished_ || reading_head_) return;
    if (in_.empty()) {
      waiting_client_ = !in_ended_;
      if (in_ended_) end_request_body();
      return;
    }
    waiting_client_ = false;
    body_started_ = true;
    writing_ = true;
    sending_.swap(in_);
    in_.clear();
    auto next = [self = this->shared_from_this()](ec_t ec, std::size_t) {
      self->writing_ = false;
      if (self->finished_) return;
      if (ec) return self->fail_connect(ec);
      // The backend took them: the client may send as many again.
      self->conn_->proxy_consumed(self->id_, self->sending_.size());
      self->pump_request();
    };
    if (chunked_) {
      frame_ = fmt::format("{:x}\r\n", sending_.size());
      std::array<boost::asio::const_buffer, 3> b{boost::asio::buffer(frame_), boost::asio::buffer(sending_),
                                                 boost::asio::buffer("\r\n", 2)};
      return boost::asio::async_write(*backend_, b, next);
    }
    boost::asio::async_write(*backend_, boost::asio::buffer(sending_), next);
  }

  void end_request_body() {
    reading_head_ = true;
    if (!chunked_) return read_response_head();
    boost::asio::async_write(*backend_, boost::asio::buffer("0\r\n\r\n", 5), [self = this->shared_from_this()](ec_t ec, std::size_t) {
      if (self->finished_) return;
      if (ec) return self->fail_connect(ec);
      self->read_response_head();
    });
  }

  // --- response --------------------------------------------------------------------------
  void read_response_head(int interim = 0) {
    res_.emplace();
    res_->header_limit(static_cast<std::uint32_t>(config::kMaxHeadBytes));
    res_->body_limit(boost::none);  // streamed through a fixed buffer: no size to bound
    if (head_request_) res_->skip(true);
    if (interim == 0) arm(cfg().read_timeout_ms);
    boost::beast::http::async_read_header(*backend_, backend_buf_, *res_, [self = this->shared_from_this(), interim](ec_t ec, std::size_t) {
      if (self->finished_) return;
      if (ec && self->timed_out_)
        return self->fail(auth::Verdict::Http504_BackendTimeout,
                          "the backend " + self->backend_name() + " sent no answer within read_timeout_ms");
      if (ec) return self->fail(auth::Verdict::Http502_3_BackendInvalidAnswer,
                                "the backend " + self->backend_name() + " sent no valid answer: " + ec.message());
      const unsigned status = self->res_->get().result_int();
      // No upgrade over HTTP/2 (WebSocket is HTTP/1.1 only): a 101 here is never a tunnel.
      if (status == 101)
        return self->fail(auth::Verdict::Http502_3_BackendInvalidAnswer,
                          "the backend " + self->backend_name() + " switched protocols (101) although no upgrade was asked for");
      if (status >= 100 && status < 200) {
        // Interim answers precede the final one on the same connection; dropped, bounded.
        if (interim + 1 >= kMaxInterim)
          return self->fail(auth::Verdict::Http502_3_BackendInvalidAnswer,
                            "the backend " + self->backend_name() + " sent more than " +
                                std::to_string(kMaxInterim - 1) + " interim (1xx) answers");
        return self->read_response_head(interim + 1);
      }
      self->send_response_head();
    });
  }

  std::string backend_name() const { return Connecting::backend_name(); }

  void send_response_head() {
    auto& msg = res_->get();
    Response r;
    r.status = static_cast<int>(msg.result_int());
    const std::string connection(msg[boost::beast::http::field::connection]);
    for (const auto& f : msg) {
      if (is_hop_by_hop(f.name_string(), connection)) continue;
      r.headers.push_back({std::string(f.name_string()), std::string(f.value())});
    }
    const bool no_body = head_request_ || r.status == 204 || r.status == 304;
    if (auto len = res_->content_length(); len && (!no_body || head_request_))
      r.headers.push_back({"content-length", std::to_string(*len)});
    res_done_ = no_body || res_->is_done();
    answered_ = true;
    conn_->proxy_head(id_, std::move(r), !no_body);
    if (!no_body && !res_done_) pump_response();
    else if (res_done_ && no_body) response_done();
  }

  void pump_response() {
    if (reading_out_ || res_done_ || finished_ || out_off_ < out_len_) return;
    reading_out_ = true;
    res_->get().body().data = out_.data();
    res_->get().body().size = out_.size();
    arm(cfg().read_timeout_ms);
    boost::beast::http::async_read_some(*backend_, backend_buf_, *res_, [self = this->shared_from_this()](ec_t ec, std::size_t) {
      self->reading_out_ = false;
      if (self->finished_) return;
      if (ec == boost::beast::http::error::need_buffer) ec = {};
      if (ec) return self->fail(auth::Verdict::Http502_3_BackendInvalidAnswer, "the backend's answer broke off");
      self->out_len_ = self->out_.size() - self->res_->get().body().size;
      self->out_off_ = 0;
      self->res_done_ = self->res_->is_done();
      if (self->out_len_ == 0 && !self->res_done_) return self->pump_response();
      self->conn_->proxy_ready(self->id_);
    });
  }

  void response_done() {
    if (finished_) return;
    finished_ = true;
    ++arm_seq_;
    timer_.cancel();
    if (res_->keep_alive() && in_ended_ && in_.empty())
      put_idle(pool_key(), std::move(backend_), cfg().max_idle);
    else
      backend_->close();
  }

  // Before the answer's head: an error page on the stream; after it: the stream is reset.
  void fail(auth::Verdict answer, std::string reason) {
    if (finished_) return;
    cancel();
    ProxyResult r;
    r.answer = answer;
    r.reason = std::move(reason);
    r.answered = answered_;
    conn_->proxy_failed(id_, std::move(r));
  }

  // BackendConnecting's end for a failed connection.
  void finish(ProxyResult r) {
    if (finished_) return;
    cancel();
    r.answered = answered_;
    conn_->proxy_failed(id_, std::move(r));
  }

  std::shared_ptr<Conn> conn_;
  std::int32_t id_;
  boost::asio::io_context& io_;
  const runtime::SiteRuntime& site_;
  std::uint64_t generation_;
  ProxyPlan plan_;
  std::string head_, frame_, in_, sending_;
  bool in_ended_, head_request_;
  std::uint32_t body_timeout_ms_;
  boost::asio::steady_timer timer_;
  tcp::resolver resolver_;
  std::unique_ptr<tcp::socket> connecting_;
  std::unique_ptr<BackendStream> backend_;
  boost::beast::flat_buffer backend_buf_;
  std::optional<ResParser> res_;
  std::array<char, kChunk> out_{};
  std::size_t out_len_ = 0, out_off_ = 0;
  std::uint64_t arm_seq_ = 0;
  bool chunked_ = false, reused_ = false, head_sent_ = false, body_started_ = false, writing_ = false;
  bool reading_head_ = false, waiting_client_ = false, reading_out_ = false, res_done_ = false;
  bool answered_ = false, timed_out_ = false, finished_ = false;
};

}  // namespace certgate::http
