#include "tls/stream.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include <cerrno>
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
  if (ec || !SSL_set_fd(ssl_, socket_.native_handle())) {
    SSL_free(ssl_);
    throw std::runtime_error("cannot attach TLS to the socket");
  }
  // Read whatever the socket holds in one call (OpenSSL otherwise reads each record's header
  // and body separately); what it read ahead is seen through SSL_has_pending.
  SSL_set_read_ahead(ssl_, 1);
  SSL_set_accept_state(ssl_);
}

Stream::~Stream() { SSL_free(ssl_); }

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
