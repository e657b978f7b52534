#include "http/admin_access.hpp"

namespace certgate::http {

AdminAccess::AdminAccess(const config::ServerSettings& s) {
  for (const auto& text : s.admin_allow)
    if (auto b = config::parse_address_block(text)) blocks_.push_back(*b);  // checked at load
}

bool AdminAccess::allows(const boost::asio::ip::address& peer) const {
  for (const auto& b : blocks_) {
    if (peer.is_v4()) {
      const auto bytes = peer.to_v4().to_bytes();
      if (config::contains(b, bytes.data(), bytes.size())) return true;
    } else {
      const auto bytes = peer.to_v6().to_bytes();
      if (config::contains(b, bytes.data(), bytes.size())) return true;
    }
  }
  return false;
}

}  // namespace certgate::http
