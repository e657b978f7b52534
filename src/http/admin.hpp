#pragma once
// The operators' listener ([server] admin_listen): plain HTTP, GET /metrics in the Prometheus
// text exposition format (revocation fetches and cache ages, open connections). It serves no
// site content and takes no client certificates: bind it to loopback or a management network.
#include "http/connection.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

namespace certgate::http {

// `tls`: the admin_client_cas context (http/admin_access.hpp), or null for plain HTTP.
void accept_admin(ServerState& state, boost::asio::ip::tcp::acceptor& acceptor,
                  boost::asio::ssl::context* tls = nullptr);

// The text /metrics answers with.
std::string metrics_text(const ServerState& state);

}  // namespace certgate::http
