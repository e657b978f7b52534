#pragma once
// Who may use the admin listener: peers inside [server] admin_allow (loopback by default).
#include "config/address_block.hpp"
#include "config/config.hpp"

#include <boost/asio/ip/address.hpp>

#include <vector>

namespace certgate::http {

class AdminAccess {
 public:
  explicit AdminAccess(const config::ServerSettings& s);
  bool allows(const boost::asio::ip::address& peer) const;

 private:
  std::vector<config::AddressBlock> blocks_;
};

}  // namespace certgate::http
