#include "net/proxy_protocol.hpp"

#include <array>
#include <cstring>

namespace certgate::net {
namespace {

namespace ip = boost::asio::ip;
using Status = ProxyHeader::Status;

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::array<unsigned char, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                        0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

ProxyHeader invalid(int version, std::string why) {
  ProxyHeader h;
  h.status = Status::Invalid;
  h.version = version;
  h.error = std::move(why);
  return h;
}

// A balancer whose two sides differ in family writes an IPv4 client as ::ffff:a.b.c.d (HAProxy
// does): it is the IPv4 client a.b.c.d, in the log, to the backend and to the loopback test.
ip::address unmapped(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  return a;
}

// The specification's ports: 1 to 5 digits, at most 65535.
std::optional<std::uint16_t> port_of(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

ProxyHeader parse_v1(std::string_view bytes) {
  const auto lf = bytes.substr(0, kProxyV1MaxBytes).find('\n');
  if (lf == std::string_view::npos)
    return bytes.size() >= kProxyV1MaxBytes ? invalid(1, "v1 header longer than 107 bytes")
                                            : ProxyHeader{Status::Incomplete, 1};
  if (lf == 0 || bytes[lf - 1] != '\r') return invalid(1, "v1 header line does not end in CRLF");
  const std::string_view line = bytes.substr(kV1Prefix.size(), lf - 1 - kV1Prefix.size());
  ProxyHeader h;
  h.status = Status::Complete;
  h.version = 1;
  h.length = lf + 1;
  // "UNKNOWN" may be followed by anything: the receiver ignores it and keeps the real peer.
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) return h;
  std::array<std::string_view, 5> f;
  std::size_t n = 0, start = 0;
  for (std::size_t i = 0; i <= line.size(); ++i) {
    if (i < line.size() && line[i] != ' ') continue;
    if (n == f.size() || i == start) return invalid(1, "v1 header is not PROTO SRC DST SPORT DPORT");
    f[n++] = line.substr(start, i - start);
    start = i + 1;
  }
  if (n != f.size()) return invalid(1, "v1 header is not PROTO SRC DST SPORT DPORT");
  const bool v4 = f[0] == "TCP4";
  if (!v4 && f[0] != "TCP6") return invalid(1, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
  boost::system::error_code ec1, ec2;
  const std::string src(f[1]), dst(f[2]);
  ip::address sa, da;
  if (v4) {
    sa = ip::make_address_v4(src, ec1);
    da = ip::make_address_v4(dst, ec2);
  } else {
    sa = ip::make_address_v6(src, ec1);
    da = ip::make_address_v6(dst, ec2);
  }
  if (ec1 || ec2 || src.find('%') != std::string::npos || dst.find('%') != std::string::npos)
    return invalid(1, std::string("v1 address is not an ") + (v4 ? "IPv4" : "IPv6") + " address");
  const auto sport = port_of(f[3]), dport = port_of(f[4]);
  if (!sport || !dport) return invalid(1, "v1 port is not a number from 0 to 65535");
  h.source = ip::tcp::endpoint(unmapped(sa), *sport);
  return h;
}

ProxyHeader parse_v2(std::string_view bytes) {
  if (bytes.size() < kProxyV2FixedBytes) return ProxyHeader{Status::Incomplete, 2};
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned version = p[12] >> 4, command = p[12] & 0x0F;
  const unsigned family = p[13] >> 4, transport = p[13] & 0x0F;
  const std::size_t total = kProxyV2FixedBytes + ((std::size_t{p[14]} << 8) | p[15]);
  if (version != 2) return invalid(2, "v2 header with version " + std::to_string(version));
  if (command > 1) return invalid(2, "v2 command is neither LOCAL nor PROXY");
  if (family > 3 || transport > 2) return invalid(2, "v2 unknown address family or transport");
  // The specification's only PROXY bytes are 0x00 (UNSPEC) and a family with a transport; a
  // family without one (0x10) or a transport without one (0x01) "must be rejected".
  if (command == 1 && (family == 0) != (transport == 0))
    return invalid(2, "v2 address family and transport do not go together");
  if (total > kProxyV2MaxBytes)
    return invalid(2, "v2 header of " + std::to_string(total) + " bytes (at most " +
                          std::to_string(kProxyV2MaxBytes) + " accepted)");
  if (bytes.size() < total) {
    ProxyHeader h{Status::Incomplete, 2};
    h.v2_total = total;
    return h;
  }
  ProxyHeader h;
  h.status = Status::Complete;
  h.version = 2;
  h.length = total;
  // LOCAL: the balancer speaks for itself (health checks); the address block is ignored.
  if (command == 0) return h;
  const std::size_t block = total - kProxyV2FixedBytes;
  const unsigned char* a = p + kProxyV2FixedBytes;
  constexpr std::size_t kInet = 12, kInet6 = 36, kUnix = 216;
  if (transport == 2) return invalid(2, "v2 PROXY for a datagram on a stream listener");
  if (family == 1 || family == 2) {
    const std::size_t need = family == 1 ? kInet : kInet6;
    if (block < need) return invalid(2, "v2 address block shorter than its family needs");
    ip::address src;
    std::uint16_t sport = 0;
    if (family == 1) {
      ip::address_v4::bytes_type b;
      std::memcpy(b.data(), a, 4);
      src = ip::address_v4(b);
      sport = static_cast<std::uint16_t>((a[8] << 8) | a[9]);
    } else {
      ip::address_v6::bytes_type b;
      std::memcpy(b.data(), a, 16);
      src = ip::address_v6(b);
      sport = static_cast<std::uint16_t>((a[32] << 8) | a[33]);
    }
    h.source = ip::tcp::endpoint(unmapped(src), sport);
  } else if (family == 3 && block < kUnix) {
    return invalid(2, "v2 address block shorter than its family needs");
  }
  // UNSPEC and UNIX carry no IP address: the connection's own peer stands. TLVs follow the
  // addresses; nothing here needs them, and their length is already bounded by `total`.
  return h;
}

}  // namespace

ProxyHeader parse_proxy_header(std::string_view bytes) {
  const std::size_t sig = std::min(bytes.size(), kV2Signature.size());
  if (std::memcmp(bytes.data(), kV2Signature.data(), sig) == 0 && sig > 0) {
    if (bytes.size() < kV2Signature.size()) return ProxyHeader{Status::Incomplete, 0};
    return parse_v2(bytes);
  }
  const std::size_t pre = std::min(bytes.size(), kV1Prefix.size());
  if (bytes.substr(0, pre) == kV1Prefix.substr(0, pre) && pre > 0) {
    if (bytes.size() < kV1Prefix.size()) return ProxyHeader{Status::Incomplete, 0};
    return parse_v1(bytes);
  }
  if (bytes.empty()) return ProxyHeader{Status::Incomplete, 0};
  return invalid(0, bytes[0] == 0x16 ? "no PROXY header (a TLS handshake came first)"
                                     : "no PROXY header (neither the v1 nor the v2 signature)");
}

}  // namespace certgate::net
