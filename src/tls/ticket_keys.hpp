#pragma once
// Session-ticket keys shared by every TLS context of the process (all sites, all configuration
// generations), so a reload does not cost returning clients their resumption. A new key is made
// every hour; tickets made with the two keys before it are still accepted and renewed, tickets
// older than that are not: a leaked key exposes at most three hours of sessions, and no key is
// ever written to disk.
#include <openssl/ssl.h>

namespace certgate::tls {

void use_rotating_ticket_keys(SSL_CTX* ctx);

}  // namespace certgate::tls
