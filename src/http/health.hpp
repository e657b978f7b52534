#pragma once
// The load balancer's questions on the admin listener: /healthz (the process answers) and
// /readyz (it can serve: a configuration is loaded, its listeners are open and not closing,
// and every site with revocation = "cache-only" holds a current CRL from each issuer it trusts,
// since such a site cannot fetch one and would answer 403.13 until it has).
#include "http/connection.hpp"

#include <string>
#include <vector>

namespace certgate::http {

// What keeps the instance from being ready; empty when ready.
std::vector<std::string> not_ready_reasons(const ServerState& state);

}  // namespace certgate::http
