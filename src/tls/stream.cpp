#include "tls/stream.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>

namespace certgate::tls {

Stream::Stream(socket_type socket, SSL_CTX* ctx) : socket_(std::move(socket)), ssl_(SSL_new(ctx)) {
  if (!ssl_) throw std::bad_alloc();
  // Partial writes let async_write_some report what went out; moving buffers let a retried write
  // come from the per-thread scratch or the caller's buffer alike.
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                         SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // A client that hangs up without close_notify (most do) reads as end of stream. Without this,
  // OpenSSL treats the EOF as a fatal error and drops the session from the cache, so the client
  // could never resume it. HTTP framing (Content-Length, chunks) still detects a cut request.
  SSL_set_options(ssl_, SSL_OP_IGNORE_UNEXPECTED_EOF);
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  // The stash's receive learns from the kernel whether it left the socket empty (stream.hpp).
  // Not fatal where unsupported: the receive then only trusts an end of stream, as Asio does.
  const int on = 1;
  if (!ec) ::setsockopt(socket_.native_handle(), SOL_TCP, TCP_INQ, &on, sizeof on);
  BIO* bio = ec ? nullptr : BIO_new(bio_method());
  if (!bio) {
    SSL_free(ssl_);
    throw std::runtime_error("cannot attach TLS to the socket");
  }
  BIO_set_data(bio, this);  // the stream does not move (no copy or move constructor)
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);  // one reference, owned by the SSL object
  // Read whatever the socket holds in one call (OpenSSL otherwise reads each record's header
  // and body separately); what it read ahead is seen through SSL_has_pending.
  SSL_set_read_ahead(ssl_, 1);
  SSL_set_accept_state(ssl_);
}

Stream::~Stream() { SSL_free(ssl_); }

// OpenSSL's socket BIO (bss_sock.c) with the stash in front: the same retry flags and
// end-of-stream flag, so SSL_get_error and SSL_OP_IGNORE_UNEXPECTED_EOF see what they would see
// on the socket itself; recv(2) and send(2) with MSG_NOSIGNAL instead of read(2) and write(2).
BIO_METHOD* Stream::bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "certgate stream");
    if (!m || !BIO_meth_set_read(m, bio_read) || !BIO_meth_set_write(m, bio_write) ||
        !BIO_meth_set_ctrl(m, bio_ctrl))
      throw std::bad_alloc();
    return m;
  }();
  return method;
}

int Stream::bio_read(BIO* b, char* out, int len) {
  auto* s = static_cast<Stream*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (s->stash_begin_ < s->stash_end_) {
    const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(len), s->stash_end_ - s->stash_begin_);
    std::memcpy(out, s->stash_.data() + s->stash_begin_, n);
    s->stash_begin_ = static_cast<std::uint16_t>(s->stash_begin_ + n);
    if (s->stash_begin_ == s->stash_end_) s->stash_begin_ = s->stash_end_ = 0;
    s->starved_ = false;
    return static_cast<int>(n);
  }
  const ssize_t r = ::recv(s->socket_.native_handle(), out, static_cast<std::size_t>(len), 0);
  s->starved_ = r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  if (r == 0) BIO_set_flags(b, BIO_FLAGS_IN_EOF);
  else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
  return static_cast<int>(r);
}

int Stream::bio_write(BIO* b, const char* in, int len) {
  auto* s = static_cast<Stream*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  const ssize_t r = ::send(s->socket_.native_handle(), in, static_cast<std::size_t>(len), MSG_NOSIGNAL);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
  return static_cast<int>(r);
}

long Stream::bio_ctrl(BIO* b, int cmd, long, void* ptr) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DUP:
      return 1;
    case BIO_CTRL_EOF:
      return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    case BIO_C_GET_FD: {
      const int fd = static_cast<Stream*>(BIO_get_data(b))->socket_.native_handle();
      if (ptr) *static_cast<int*>(ptr) = fd;
      return fd;
    }
    default:  // no kTLS, nothing pending outside the stash (SSL_has_pending does not ask)
      return 0;
  }
}

unsigned char* Stream::scratch() {
  thread_local unsigned char buffer[kScratch];
  return buffer;
}

Stream::Next Stream::classify(SSL* ssl, int r, boost::system::error_code& ec) {
  const int saved_errno = errno;
  switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
      return Next::WaitRead;
    case SSL_ERROR_WANT_WRITE:
      return Next::WaitWrite;
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      ec = boost::asio::error::eof;
      return Next::Done;
    case SSL_ERROR_SYSCALL:
      if (unsigned long e = ERR_get_error())
        ec = {static_cast<int>(e), boost::asio::error::get_ssl_category()};
      else if (saved_errno != 0)
        ec = {saved_errno, boost::system::system_category()};
      else
        ec = boost::asio::error::eof;
      break;
    case SSL_ERROR_SSL:
      ec = {static_cast<int>(ERR_peek_last_error()), boost::asio::error::get_ssl_category()};
      break;
    default:
      ec = boost::asio::error::fault;
  }
  ERR_clear_error();
  return Next::Done;
}

}  // namespace certgate::tls
