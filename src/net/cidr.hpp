#pragma once
// Address ranges written as "10.0.0.0/8", "::1/128" or a bare address (one host), as the
// administrator lists the load balancers trusted to send a PROXY protocol header.
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace certgate::net {

struct Cidr {
  std::variant<boost::asio::ip::network_v4, boost::asio::ip::network_v6> net;

  // nullopt for anything but an address with an optional prefix length of its family.
  static std::optional<Cidr> parse(const std::string& text) {
    namespace ip = boost::asio::ip;
    boost::system::error_code ec;
    const auto slash = text.find('/');
    const std::string host = text.substr(0, slash);
    const auto addr = ip::make_address(host, ec);
    if (ec) return std::nullopt;
    unsigned bits = addr.is_v4() ? 32 : 128;
    if (slash != std::string::npos) {
      const std::string len = text.substr(slash + 1);
      if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
      bits = static_cast<unsigned>(std::stoul(len));
      if (bits > (addr.is_v4() ? 32u : 128u)) return std::nullopt;
    }
    if (addr.is_v4()) return Cidr{ip::network_v4(addr.to_v4(), bits).canonical()};
    // "::ffff:10.0.0.0/104" is 10.0.0.0/8: contains() sees a dual-stack listener's IPv4 peers
    // as IPv4, so kept as an IPv6 range it would never match the peers it names.
    if (addr.to_v6().is_v4_mapped() && bits >= 96)
      return Cidr{ip::network_v4(ip::make_address_v4(ip::v4_mapped, addr.to_v6()), bits - 96).canonical()};
    return Cidr{ip::network_v6(addr.to_v6(), bits).canonical()};
  }

  bool contains(boost::asio::ip::address a) const {
    namespace ip = boost::asio::ip;
    // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; the administrator wrote a.b.c.d.
    if (a.is_v6() && a.to_v6().is_v4_mapped()) a = ip::make_address_v4(ip::v4_mapped, a.to_v6());
    if (const auto* n4 = std::get_if<ip::network_v4>(&net))
      return a.is_v4() && ip::network_v4(a.to_v4(), n4->prefix_length()).canonical() == *n4;
    const auto& n6 = std::get<ip::network_v6>(net);
    return a.is_v6() && ip::network_v6(a.to_v6(), n6.prefix_length()).canonical() == n6;
  }
};

inline bool any_contains(const std::vector<Cidr>& nets, const boost::asio::ip::address& a) {
  for (const auto& n : nets)
    if (n.contains(a)) return true;
  return false;
}

}  // namespace certgate::net
