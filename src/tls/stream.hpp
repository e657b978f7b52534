#pragma once
// A server-side TLS stream that runs OpenSSL directly on the socket: SSL_read/SSL_write on the
// descriptor, waiting for readiness with the socket's own async_wait when OpenSSL wants more.
//
// Why not asio::ssl::stream: it moves every byte through a BIO pair and two staging vectors,
// 4 x 17 KB per connection whether idle or not, and copies each record twice. Here an idle
// connection holds the SSL object and a small stash and nothing else (SSL_MODE_RELEASE_BUFFERS
// gives OpenSSL's record buffers back between reads), and the kernel reads and writes OpenSSL's
// buffers directly.
//
// The stash: an idle connection waits by receiving into kStash bytes of its own, not by peeking.
// The next request's record (a few hundred bytes) lands there in the receive that also tells the
// connection to wake, and OpenSSL reads it from the stash through this stream's BIO: one system
// call per request fewer than a peek followed by OpenSSL's read (system calls are most of a
// keep-alive request's CPU, bench/README.md). A longer record is completed from the socket.
//
// It models Beast's AsyncReadStream / AsyncWriteStream, so beast::http::async_read and
// async_write work on it unchanged. One read and one write may be outstanding at once (a proxied
// upload while the answer streams back), both on the connection's single-threaded loop.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/error.hpp>
// After the above (it needs socket_base): the receive operation specialised below.
#include <boost/asio/detail/reactive_socket_recv_op.hpp>
#include <boost/asio/detail/socket_ops.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace certgate::tls {
// The stash's receive buffer, a type of its own so that Asio's receive operation for it (below)
// can report a drained socket.
struct StashBuffer : boost::asio::mutable_buffer {
  using boost::asio::mutable_buffer::mutable_buffer;
};
}  // namespace certgate::tls

// Asio tries a receive at once ("speculatively") before waiting for the socket, unless the last
// receive found the socket drained, which it concludes only from a zero-byte read. A keep-alive
// connection starts its idle wait right after sending an answer, when the next request cannot
// have arrived yet: that try is a system call that always fails, a quarter of the system calls
// of a keep-alive request. The stash's receive asks the kernel instead (TCP_INQ, set on the
// socket by Stream): with the bytes it returns, recvmsg says how many are left, and it counts a
// FIN as one (tcp_inq_hint), so "none left" is exact, where a short read is not (recv stops
// early at a FIN that came with the data, and at an urgent mark). Edge-triggered epoll reports
// whatever arrives after it, so the next wait goes straight to epoll. Without TCP_INQ (older
// kernels) no count comes back and this is Asio's own rule. Asio's operation otherwise, for its
// epoll reactor (the one certgate is built with).
#if !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && !defined(BOOST_ASIO_HAS_IOCP)
namespace boost::asio::detail {
template <>
class reactive_socket_recv_op_base<certgate::tls::StashBuffer> : public reactor_op {
 public:
  reactive_socket_recv_op_base(const boost::system::error_code& success_ec, socket_type socket,
                               socket_ops::state_type state, const certgate::tls::StashBuffer& buffer,
                               socket_base::message_flags flags, func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_recv_op_base::do_perform, complete_func),
        socket_(socket), state_(state), buffer_(buffer), flags_(flags) {}

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<reactive_socket_recv_op_base*>(base);
    iovec iov{o->buffer_.data(), o->buffer_.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    for (;;) {
      const ssize_t n = ::recvmsg(o->socket_, &msg, o->flags_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return not_done;  // wait for the socket
      o->bytes_transferred_ = n < 0 ? 0 : static_cast<std::size_t>(n);
      if (n < 0) {
        o->ec_ = boost::system::error_code(errno, boost::asio::error::get_system_category());
        return done_and_exhausted;
      }
      if (n == 0) {
        if ((o->state_ & socket_ops::stream_oriented) != 0) o->ec_ = boost::asio::error::eof;
        return done_and_exhausted;
      }
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ) {
          int left = 0;
          std::memcpy(&left, CMSG_DATA(c), sizeof left);
          return left == 0 ? done_and_exhausted : done;
        }
      }
      return done;
    }
  }

 private:
  socket_type socket_;
  socket_ops::state_type state_;
  certgate::tls::StashBuffer buffer_;
  socket_base::message_flags flags_;
};
}  // namespace boost::asio::detail
#endif

namespace certgate::tls {

class Stream {
 public:
  using socket_type = boost::asio::ip::tcp::socket;
  using executor_type = socket_type::executor_type;
  using next_layer_type = socket_type;
  using lowest_layer_type = socket_type::lowest_layer_type;

  // Takes the accepted socket; the SSL object starts in server (accept) state on `ctx`.
  Stream(socket_type socket, SSL_CTX* ctx);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  socket_type& next_layer() { return socket_; }
  lowest_layer_type& lowest_layer() { return socket_.lowest_layer(); }
  SSL* native_handle() { return ssl_; }

  // Completion: void(error_code).
  template <class Handler>
  auto async_handshake(Handler&& handler) {
    return compose<false>([](SSL* s, std::size_t&) { return SSL_do_handshake(s); },
                          std::forward<Handler>(handler));
  }

  // Sends close_notify and completes; it does not wait for the peer's (clients rarely send one,
  // and the connection is closed right after). Completion: void(error_code).
  template <class Handler>
  auto async_shutdown(Handler&& handler) {
    return compose<false>([](SSL* s, std::size_t&) { return SSL_shutdown(s) >= 0 ? 1 : -1; },
                          std::forward<Handler>(handler));
  }

  // Drives a certificate request begun with tls::begin_late_handshake (tls/on_demand.hpp): sends
  // it, then reads the client's answer until `done(ssl)`. Application data arriving first ends
  // the wait too (the caller then finds no certificate). Completion: void(error_code).
  template <class Done, class Handler>
  auto async_late_handshake(Done done, Handler&& handler) {
    return compose<false>(
        [done, sent = false](SSL* s, std::size_t&) mutable {
          if (!sent) {
            const int r = SSL_do_handshake(s);
            if (r <= 0) return r;
            sent = true;
          }
          if (done(s)) return 1;
          unsigned char byte;
          std::size_t n = 0;
          const int r = SSL_peek_ex(s, &byte, 1, &n);
          if (r > 0 || done(s)) return 1;
          return r;
        },
        std::forward<Handler>(handler));
  }

  // Completes when a read will find something: at once when OpenSSL or the stash already holds
  // received bytes, else once the socket's next bytes are in the stash (or it reached its end).
  // An idle keep-alive connection waits this way, with no read buffer allocated, neither its own
  // nor OpenSSL's. Completion: void(error_code).
  template <class Handler>
  auto async_wait_readable(Handler&& handler) {
    return compose<false>(WaitReadable{this}, std::forward<Handler>(handler));
  }

  // What can be read now, without waiting (the socket is non-blocking); asio::error::would_block
  // when OpenSSL must wait for the socket first. With it the stream is also a SyncReadStream:
  // a connection the socket just woke parses the head at once, without a trip through the loop
  // (a posted completion, and the reactor poll that comes with it) before it is answered.
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    boost::asio::mutable_buffer b = first_nonempty(buffers);
    return now([b](SSL* s, std::size_t& n) { return SSL_read_ex(s, b.data(), b.size(), &n); }, b.size() == 0, ec);
  }
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  // Writes what can be written now, without waiting: the bytes taken (from the start of
  // `buffers`), asio::error::would_block when nothing could be. The rest goes by
  // async_write_some, so a response that fits the socket buffer needs no trip through the loop.
  template <class ConstBuffers>
  std::size_t write_now(const ConstBuffers& buffers, boost::system::error_code& ec) {
    return now(
        [&buffers](SSL* s, std::size_t& n) {
          const_span data = gather(buffers);
          return SSL_write_ex(s, data.data, data.size, &n);
        },
        boost::asio::buffer_size(buffers) == 0, ec);
  }

  // Completion: void(error_code, std::size_t). The end of the stream, with or without the peer's
  // close_notify, is asio::error::eof.
  template <class MutableBuffers, class Handler>
  auto async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    boost::asio::mutable_buffer b = first_nonempty(buffers);
    return compose<true>(
        [b](SSL* s, std::size_t& n) { return SSL_read_ex(s, b.data(), b.size(), &n); },
        std::forward<Handler>(handler), b.size() == 0);
  }

  // Writes from the start of `buffers` (OpenSSL returns after each record it sent); a head and a
  // small body go out as one record (and one send), gathered in a per-thread scratch buffer.
  template <class ConstBuffers, class Handler>
  auto async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    // A copy of the sequence: the caller's object may be a temporary, gone before a retry.
    return compose<true>(
        [buffers](SSL* s, std::size_t& n) {
          const_span data = gather(buffers);
          return SSL_write_ex(s, data.data, data.size, &n);
        },
        std::forward<Handler>(handler), boost::asio::buffer_size(buffers) == 0);
  }

 private:
  struct const_span {
    const void* data;
    std::size_t size;
  };
  enum class Next { Done, WaitRead, WaitWrite };
  static constexpr int kWaitRead = -1000;  // an action's "wait for the socket first", no SSL call made
  static constexpr int kFill = -1001;      // the same, waiting by receiving into the stash (see Op)
  static constexpr std::size_t kStash = 1024;

  // The BIO OpenSSL reads and writes through: the stash first, then the socket (stream.cpp).
  static BIO_METHOD* bio_method();
  static int bio_read(BIO* b, char* out, int len);
  static int bio_write(BIO* b, const char* in, int len);
  static long bio_ctrl(BIO* b, int cmd, long num, void* ptr);

  // async_wait_readable's action: makes no SSL call that reports errors, so Op leaves OpenSSL's
  // error queue alone for it (checking the queue costs a thread-local lookup).
  struct WaitReadable {
    Stream* stream;
    bool waited = false;
    int operator()(SSL* s, std::size_t&) {
      // SSL_has_pending also counts the start of a record OpenSSL cannot decrypt yet. Once its
      // last read of the socket would have blocked (starved_), those bytes are not readable:
      // completing at once would send the caller (HTTP/2's read loop) straight back here, a busy
      // loop for as long as the client leaves a record unfinished. Wait for the socket then.
      if (waited || stream->stash_begin_ < stream->stash_end_ || SSL_pending(s) > 0 ||
          (!stream->starved_ && SSL_has_pending(s)))
        return 1;
      waited = true;
      return kFill;
    }
  };

  // After an SSL call returned `r` <= 0: wait for the socket, or finish with `ec`.
  static Next classify(SSL* ssl, int r, boost::system::error_code& ec);
  static unsigned char* scratch();
  static constexpr std::size_t kScratch = 16 * 1024;

  // The first buffer as it is when it holds everything or a full record's worth, else the
  // sequence copied into the scratch buffer (up to kScratch bytes). `buffers` is not empty.
  template <class Buffers>
  static const_span gather(const Buffers& buffers) {
    boost::asio::const_buffer first(*boost::asio::buffer_sequence_begin(buffers));
    if (first.size() >= kScratch || first.size() == boost::asio::buffer_size(buffers))
      return {first.data(), first.size()};
    return {scratch(), boost::asio::buffer_copy(boost::asio::buffer(scratch(), kScratch), buffers)};
  }

  template <class Buffers>
  static boost::asio::mutable_buffer first_nonempty(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it)
      if (boost::asio::mutable_buffer(*it).size() > 0) return *it;
    return {};
  }

  // One SSL call retried until it succeeds or fails: `Action(SSL*, size_t& n)` returns the
  // SSL call's result. A result ready on the first try is delivered through post, never inline.
  template <bool WithSize, class Action>
  class Op {
   public:
    Op(Stream& s, Action a, bool nothing) : s_(s), action_(std::move(a)), nothing_(nothing) {}

    // The stash receive's completion: bytes are there (or the stream ended, which the read will
    // see: the socket reads as ended again).
    template <class Self>
    void operator()(Self& self, boost::system::error_code ec, std::size_t n) {
      if (!ec) {
        s_.stash_begin_ = 0;
        s_.stash_end_ = static_cast<std::uint16_t>(n);
      }
      (*this)(self, ec == boost::asio::error::eof ? boost::system::error_code() : ec);
    }

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
      if (posted_) return deliver(self);
      if (ec) return finish(self, ec, 0);  // the wait failed: cancelled (timeout) or closed
      if (nothing_) return finish(self, {}, 0);
      // OpenSSL knows the socket only by its number: once closed, that number may already name
      // another client's connection, so no SSL call may follow a close.
      if (!s_.socket_.is_open()) return finish(self, boost::asio::error::bad_descriptor, 0);
      std::size_t n = 0;
      if constexpr (!std::is_same_v<Action, WaitReadable>)
        if (ERR_peek_error() != 0) ERR_clear_error();  // checking is cheaper than clearing an empty queue
      int r = action_(s_.ssl_, n);
      if (r > 0) return finish(self, {}, n);
      // Waiting for readability by receiving rather than with async_wait: a wait makes the
      // reactor re-register the socket (an epoll_ctl per wait), a receive does not.
      if (r == kFill) {
        waited_ = true;
        return s_.socket_.async_receive(StashBuffer(s_.stash_.data(), kStash), std::move(self));
      }
      switch (r == kWaitRead ? Next::WaitRead : classify(s_.ssl_, r, ec)) {
        case Next::WaitRead:
          waited_ = true;
          return s_.socket_.async_wait(socket_type::wait_read, std::move(self));
        case Next::WaitWrite:
          waited_ = true;
          return s_.socket_.async_wait(socket_type::wait_write, std::move(self));
        case Next::Done:
          return finish(self, ec, 0);
      }
    }

   private:
    template <class Self>
    void finish(Self& self, boost::system::error_code ec, std::size_t n) {
      ec_ = ec;
      n_ = n;
      if (waited_) return deliver(self);
      posted_ = true;
      boost::asio::post(s_.socket_.get_executor(), std::move(self));
    }
    template <class Self>
    void deliver(Self& self) {
      if constexpr (WithSize) self.complete(ec_, n_);
      else self.complete(ec_);
    }

    Stream& s_;
    Action action_;
    bool nothing_;
    bool waited_ = false, posted_ = false;
    boost::system::error_code ec_;
    std::size_t n_ = 0;
  };

  template <class Action>
  std::size_t now(Action action, bool nothing, boost::system::error_code& ec) {
    ec = {};
    if (nothing) return 0;
    if (!socket_.is_open()) {  // see Op: no SSL call after a close
      ec = boost::asio::error::bad_descriptor;
      return 0;
    }
    std::size_t n = 0;
    if (ERR_peek_error() != 0) ERR_clear_error();
    const int r = action(ssl_, n);
    if (r > 0) return n;
    if (classify(ssl_, r, ec) != Next::Done) ec = boost::asio::error::would_block;
    return 0;
  }

  template <bool WithSize, class Action, class Handler>
  auto compose(Action action, Handler&& handler, bool nothing = false) {
    using Signature = std::conditional_t<WithSize, void(boost::system::error_code, std::size_t),
                                         void(boost::system::error_code)>;
    return boost::asio::async_compose<Handler, Signature>(Op<WithSize, Action>(*this, std::move(action), nothing),
                                                          handler, socket_);
  }

  socket_type socket_;
  SSL* ssl_;
  // Received bytes OpenSSL has not read yet: [stash_begin_, stash_end_).
  std::uint16_t stash_begin_ = 0, stash_end_ = 0;
  // OpenSSL's last read through the BIO found nothing (the socket would block): what it holds
  // unprocessed is at most an unfinished record (WaitReadable).
  bool starved_ = false;
  std::array<unsigned char, kStash> stash_;
};

}  // namespace certgate::tls
