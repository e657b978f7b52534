#pragma once
// Asking for a client certificate after the handshake (client_certificate = "on-demand",
// docs/on-demand.md): TLS 1.3 post-handshake authentication when the client offered it, a
// server-initiated secure renegotiation (RFC 5746) on TLS 1.2, else a step-up (http/step_up.hpp).
// These functions only set OpenSSL up; tls::Stream::async_late_handshake drives the exchange on
// the connection's loop.
#include <openssl/ssl.h>

#include <string>

namespace certgate::tls {

enum class LateMethod { PostHandshake, Renegotiation, StepUp };

// What this connection allows; `why` says, for StepUp, why the client cannot be asked.
LateMethod late_method(SSL* ssl, std::string* why = nullptr);

// Called from the ClientHello hook: remembers whether the client offered post-handshake auth.
void note_client_hello(SSL* ssl);

// Sends the request (CertificateRequest, or HelloRequest); false when OpenSSL refuses (the
// caller then answers 403.7).
bool begin_late_handshake(SSL* ssl, LateMethod m);
// The client has answered (with a certificate or without one).
bool late_handshake_done(SSL* ssl, LateMethod m);
// After it: client-initiated renegotiation is refused again.
void end_late_handshake(SSL* ssl, LateMethod m);

}  // namespace certgate::tls
