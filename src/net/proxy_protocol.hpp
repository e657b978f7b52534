#pragma once
// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that an L4 load
// balancer puts before the client's first byte, so the server learns the client's address.
// Pure: bytes in, verdict out; the socket side is http/proxy_accept.cpp.
#include <boost/asio/ip/tcp.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace certgate::net {

inline constexpr std::size_t kProxyV1MaxBytes = 107;  // the specification's bound, CRLF included
inline constexpr std::size_t kProxyV2FixedBytes = 16;
// A v2 header may announce up to 64 KiB of TLVs; balancers send a few dozen bytes. Longer is
// refused rather than buffered for every connection.
inline constexpr std::size_t kProxyV2MaxBytes = kProxyV2FixedBytes + 2048;
// Both versions' headers are at least this long, so this many bytes can be read without
// reading into the TLS handshake that follows ("PROXY UNKNOWN\r\n" is 15).
inline constexpr std::size_t kProxyMinBytes = 12;

struct ProxyHeader {
  enum class Status { Incomplete, Invalid, Complete };
  Status status = Status::Incomplete;
  int version = 0;          // 1 or 2 once recognised
  std::size_t length = 0;   // Complete: bytes the header takes (the TLS stream starts after)
  // Complete: the client as the balancer saw it (an IPv4-mapped IPv6 address as the IPv4 one);
  // nullopt when the header carries none (v2 LOCAL, e.g. the balancer's health check; v2
  // UNSPEC or UNIX; v1 UNKNOWN): the connection's own peer is logged, but is not the client.
  std::optional<boost::asio::ip::tcp::endpoint> source;
  std::string error;        // Invalid: why, for the log
  // Incomplete v2: the total length once the fixed part is in (0 before).
  std::size_t v2_total = 0;
};

// Parses the start of a connection's bytes. Incomplete asks for more; a v1 header never takes
// more than kProxyV1MaxBytes, a v2 one never more than kProxyV2MaxBytes.
ProxyHeader parse_proxy_header(std::string_view bytes);

}  // namespace certgate::net
