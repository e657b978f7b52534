#pragma once
// The socket side of the PROXY protocol (net/proxy_protocol.hpp): on a listener with
// proxy_protocol = true, a connection from a peer in proxy_protocol_from must open with a v1 or
// v2 header, read here without blocking the loop, within handshake_timeout_ms and within the
// header's size bound, and never a byte further (the TLS handshake follows). Any other peer,
// a missing or malformed header, or a slow one: the connection is closed and the reason logged.
#include "http/connection.hpp"

namespace certgate::http {

void accept_proxy_header(ServerState& state, Loop& loop, std::size_t listener_index,
                         boost::asio::ip::tcp::socket socket);

}  // namespace certgate::http
