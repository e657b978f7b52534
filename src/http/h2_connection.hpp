#pragma once
// HTTP/2 (RFC 9113) on a TLS connection whose ALPN chose "h2": one nghttp2 session per
// connection, driven by the connection's event loop (never blocking it). Each stream is one
// request and goes through the same routing, evidence pipeline and answers as HTTP/1.1
// (http/handler.hpp, http/request_steps.hpp), with its own W3C line (cs-version HTTP/2).
#include "http/connection.hpp"
#include "tls/stream.hpp"
#include "tls/tls_facts.hpp"

#include <functional>
#include <memory>
#include <string>

namespace certgate::http {

class H2Session {
 public:
  virtual ~H2Session() = default;
  // Graceful shutdown: GOAWAY now, the streams already open are answered, then the connection
  // closes.
  virtual void shutdown() = 0;
};

struct H2Start {
  ServerState& state;
  Loop& loop;
  std::shared_ptr<const Generation> gen;
  std::size_t listener_index = 0;
  std::size_t site = 0;  // the site the handshake's SNI chose
  tls::Stream& stream;   // owned by the HTTP/1.1 connection object, kept alive by `close`
  tls::TlsFacts& tls;    // likewise
  std::string s_ip, c_ip;
  std::uint16_t s_port = 0;
  bool local_client = false;
  // Closes the socket; holds the connection object (and so the stream) until called.
  std::function<void()> close;
};

// Starts serving: reads the client preface and runs until the connection ends.
std::shared_ptr<H2Session> start_h2(H2Start start);

}  // namespace certgate::http
