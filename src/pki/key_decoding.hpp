#pragma once

#include <string>

namespace certgate::pki {

// OpenSSL 3.0 decodes the public key of every certificate it parses through its provider decoder
// framework: each decode builds a decoder context by walking every decoder of every provider,
// about a million instructions, more than an ECDSA verification. A TLS server parses every
// certificate a client sends on every full handshake, so this was over a third of certgate's
// instructions per full handshake (callgrind). OpenSSL still decodes with its built-in key methods when an ENGINE claims the key
// type; this registers one that claims EC and RSA and hands back OpenSSL's own built-in methods, so
// the keys, signatures and checks are OpenSSL's, only the decoder lookup is skipped.
//
// Call once at start, before any certificate is read. Does nothing when OpenSSL runs with FIPS
// default properties (the built-in methods are outside the FIPS module), was built without
// engines, or certgate was configured with -DCERTGATE_BUILTIN_KEY_METHODS=OFF (docs/validation.md:
// the ENGINE interface is gone in OpenSSL 4). Returns whether the fast path is on.
bool use_builtin_key_methods();

// Static-RSA key exchange needs the server's RSA key to decrypt with the TLS padding, which only
// OpenSSL's provider implements; once the ENGINE claims RSA, OpenSSL 3.0 hands it every RSA
// operation, provider keys included, and the handshake ends in decrypt_error. Called when the
// cipher list enables such a suite: RSA keys go back to the provider path for the rest of the
// process (EC keys keep the fast path). Safe while other threads handshake.
void stop_builtin_rsa_methods();

// What the startup line reports: the OpenSSL version and whether the fast path is on.
std::string key_methods_description();

}  // namespace certgate::pki
