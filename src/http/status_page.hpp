#pragma once
// The admin listener's status page (issue 18 item 10): `/` as HTML with nothing loaded from
// elsewhere, `/status.json` with the same data, and the expiry gauges /metrics adds. Built on
// request from what is in memory (snapshot, revocation cache, answer counters): no disk, no
// network, so it may run on an event loop.
#include "http/connection.hpp"

#include <cstdint>
#include <string>

namespace certgate::http {

inline constexpr std::int64_t kExpiryWarningSeconds = 30 * 86400;

std::string status_json(const ServerState& state, std::int64_t now);
std::string status_html(const ServerState& state, std::int64_t now);
// Prometheus gauges: seconds until each trusted CA and one-to-one certificate expires.
std::string expiry_metrics(const ServerState& state, std::int64_t now);

}  // namespace certgate::http
