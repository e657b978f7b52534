#pragma once
// Who may use the admin listener: peers inside [server] admin_allow (loopback by default) and,
// with admin_client_cas, only with a client certificate those CAs issued.
#include "config/config.hpp"
#include "net/cidr.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string_view>
#include <vector>

namespace certgate::http {

class AdminAccess {
 public:
  explicit AdminAccess(const config::ServerSettings& s);
  bool allows(const boost::asio::ip::address& peer) const;

 private:
  std::vector<net::Cidr> blocks_;
};

// Whether a request's Host may be answered with the status page, status.json or /metrics: none
// (an HTTP/1.0 probe), an IP literal, localhost, or a name in [server] admin_hosts, any port. A
// browser on an allowed host visiting a page that rebinds its own name to this listener's
// address sends that name: it gets 421, not the server's configuration.
bool admin_host_allowed(std::string_view host, const config::ServerSettings& s);

// The admin listener's TLS context when [server] admin_client_cas is set (null otherwise): its
// own certificate, and a client certificate required that chains to those CAs. Throws
// std::runtime_error naming the file that cannot be used.
std::unique_ptr<boost::asio::ssl::context> admin_tls_context(const config::ServerSettings& s);

}  // namespace certgate::http
