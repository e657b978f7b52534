#pragma once
// Session-ticket keys shared by every TLS context of the process (all sites, all configuration
// generations), so a reload does not cost returning clients their resumption. A new key is made
// every hour; tickets made with the two keys before it are still accepted and renewed, tickets
// older than that are not: a leaked key exposes at most three hours of sessions, and no key is
// ever written to disk.
#include "runtime/clock.hpp"

#include <openssl/ssl.h>

#include <cstdint>
#include <string>
#include <vector>

namespace certgate::tls {

// `clock`: what keys age by (the keys are the process's, so the clock is: the last given).
void use_rotating_ticket_keys(SSL_CTX* ctx, const runtime::Clock& clock);

// The keys in use at `now` (Clock::steady_ms() / 1000), rotating when the newest is an hour old:
// their names, newest first. For tests.
std::vector<std::string> ticket_key_names_at(std::int64_t now);

}  // namespace certgate::tls
