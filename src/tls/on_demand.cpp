#include "tls/on_demand.hpp"

#include <openssl/tls1.h>

namespace certgate::tls {
namespace {

// Per-connection flags in one ex_data slot (a small integer, no allocation).
enum : std::uintptr_t { kPhaOffered = 1, kLateFinished = 2 };

int flags_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}
std::uintptr_t flags(const SSL* ssl) { return reinterpret_cast<std::uintptr_t>(SSL_get_ex_data(ssl, flags_index())); }
void set_flag(SSL* ssl, std::uintptr_t f) {
  SSL_set_ex_data(ssl, flags_index(), reinterpret_cast<void*>(flags(ssl) | f));
}

// The client's Finished of a post-handshake authentication raises no HANDSHAKE_DONE; the state
// machine passes TLS_ST_SR_FINISHED on its way back to TLS_ST_OK, which the info callback sees.
void watch(const SSL* ssl, int where, int) {
  if ((where & SSL_CB_ACCEPT_LOOP) && SSL_get_state(ssl) == TLS_ST_SR_FINISHED)
    set_flag(const_cast<SSL*>(ssl), kLateFinished);
}

}  // namespace

void note_client_hello(SSL* ssl) {
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_post_handshake_auth, &p, &len) == 1) set_flag(ssl, kPhaOffered);
}

LateMethod late_method(SSL* ssl, std::string* why) {
  const int version = SSL_version(ssl);
  if (version == TLS1_3_VERSION) {
    if (flags(ssl) & kPhaOffered) return LateMethod::PostHandshake;
    if (why) *why = "TLS 1.3 without post-handshake authentication";
    return LateMethod::StepUp;
  }
  if (SSL_get_secure_renegotiation_support(ssl)) return LateMethod::Renegotiation;
  if (why) *why = "TLS 1.2 without secure renegotiation (RFC 5746)";
  return LateMethod::StepUp;
}

bool begin_late_handshake(SSL* ssl, LateMethod m) {
  SSL_set_ex_data(ssl, flags_index(), reinterpret_cast<void*>(flags(ssl) & ~std::uintptr_t{kLateFinished}));
  if (m == LateMethod::PostHandshake) {
    SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_POST_HANDSHAKE, nullptr);
    SSL_set_info_callback(ssl, watch);
    if (SSL_verify_client_post_handshake(ssl) == 1) return true;
  } else if (m == LateMethod::Renegotiation) {
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    // SSL_OP_NO_RENEGOTIATION (set on every context) also stops the server's own; it is lifted
    // for this one exchange. Client-initiated renegotiation stays refused throughout: OpenSSL 3
    // refuses it unless SSL_OP_ALLOW_CLIENT_RENEGOTIATION, which is never set.
    SSL_clear_options(ssl, SSL_OP_NO_RENEGOTIATION);
    // A resumed (abbreviated) renegotiation would carry no CertificateRequest: a full one.
    SSL_set_options(ssl, SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
    if (SSL_renegotiate(ssl) == 1) return true;
  }
  end_late_handshake(ssl, m);
  return false;
}

bool late_handshake_done(SSL* ssl, LateMethod m) {
  if (m == LateMethod::PostHandshake) return (flags(ssl) & kLateFinished) != 0;
  return SSL_renegotiate_pending(ssl) == 0;
}

void end_late_handshake(SSL* ssl, LateMethod m) {
  SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
  if (m == LateMethod::PostHandshake) SSL_set_info_callback(ssl, nullptr);
}

}  // namespace certgate::tls
