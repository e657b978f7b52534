// tls::Stream on real loopback sockets.
#include "pki/openssl_ptr.hpp"
#include "tls/stream.hpp"

#include <gtest/gtest.h>

#include <boost/asio.hpp>

#include <chrono>

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// After the connection's socket is closed, its descriptor number can be handed to the next
// socket the process opens. OpenSSL only knows that number, so an SSL call after the close would
// read or write someone else's connection: the stream must refuse instead.
TEST(TlsStream, NoSslCallOnceTheSocketIsClosed) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  certgate::pki::SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  certgate::tls::Stream stream(acceptor.accept(), ctx.get());
  const int number = stream.next_layer().native_handle();
  stream.next_layer().close();

  tcp::socket reused(io);  // takes the lowest free descriptor: the one just closed
  reused.connect(acceptor.local_endpoint());
  ASSERT_EQ(reused.native_handle(), number);
  reused.non_blocking(true);  // a stray SSL call would then fail fast instead of blocking the test
  tcp::socket peer = acceptor.accept();
  const unsigned char record[] = {0x16, 0x03, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'};
  asio::write(peer, asio::buffer(record));

  char buf[64];
  boost::system::error_code read_ec, write_ec;
  bool read_done = false, write_done = false;
  stream.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t) {
    read_ec = ec;
    read_done = true;
  });
  stream.async_write_some(asio::buffer(std::string("secret")), [&](boost::system::error_code ec, std::size_t) {
    write_ec = ec;
    write_done = true;
  });
  io.run_for(std::chrono::seconds(5));
  EXPECT_TRUE(read_done && write_done);
  EXPECT_EQ(read_ec, asio::error::bad_descriptor);
  EXPECT_EQ(write_ec, asio::error::bad_descriptor);
  // The other connection's bytes are still there, and nothing was written to it.
  EXPECT_EQ(reused.available(), 10u);
  peer.non_blocking(true);
  boost::system::error_code ec;
  peer.read_some(asio::buffer(buf), ec);
  EXPECT_EQ(ec, asio::error::would_block);
}

}  // namespace
