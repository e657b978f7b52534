#pragma once
// The operators' listener ([server] admin_listen): plain HTTP, GET /metrics in the Prometheus
// text exposition format (revocation fetches and cache ages, open connections). It serves no
// site content and takes no client certificates: bind it to loopback or a management network.
#include "http/connection.hpp"

#include <boost/asio/ip/tcp.hpp>

namespace certgate::http {

void accept_admin(ServerState& state, boost::asio::ip::tcp::acceptor& acceptor);

// The text /metrics answers with.
std::string metrics_text(const ServerState& state);

}  // namespace certgate::http
