#pragma once
// Server-side TLS session cache shared by every context of the process (all sites, all
// configuration generations), used when [server] session_resumption = "cache" (the default).
// A returning client then resumes by session ID (TLS 1.2) or a stateful ticket (TLS 1.3): the
// session object — its client certificate already decoded — is reused as it is, with no ticket
// to decrypt and no certificate to decode again, which halves the CPU of a resumed handshake.
// Sessions stay bound to their site by the session id context; bounded in count and in
// (estimated) bytes, expired by age.
#include "runtime/clock.hpp"

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>

namespace certgate::tls {

// What a cached session is charged when its client sent `cert_list_bytes` of certificates
// (an estimate: the session plus its decoded certificates).
std::size_t largest_session_bytes(std::size_t cert_list_bytes);

// `clock`: what sessions age by (the process has one cache, so one clock: the last given).
void use_shared_session_cache(SSL_CTX* ctx, std::size_t max_sessions, std::size_t max_bytes,
                              std::uint32_t timeout_seconds, const runtime::Clock& clock);

}  // namespace certgate::tls
