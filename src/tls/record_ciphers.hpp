#pragma once
// OpenSSL 3.0 protects each TLS record through its provider interface: setting the record's
// nonce, asking the IV length and reading the tag each build OSSL_PARAM arrays that the provider
// looks up by name (strcmp), about 3,000 instructions per record before any AES is done, twice per
// keep-alive request (callgrind: a third of OpenSSL's cost of a small request and answer).
// libssl still runs a cipher through its legacy EVP_CIPHER functions when an ENGINE claims it;
// this registers one that claims AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 and hands back
// OpenSSL's own built-in implementations (the AES-NI / CLMUL / AVX code the provider wraps), so
// the cryptography is OpenSSL's, only the per-record parameter plumbing is skipped.
//
// Call once at start, before any SSL_CTX is made. Does nothing when OpenSSL runs with FIPS
// default properties, was built without engines, or certgate was configured with
// -DCERTGATE_BUILTIN_KEY_METHODS=OFF (the ENGINE interface is gone in OpenSSL 4). Returns whether
// the built-in record ciphers are on.
#include <string>

namespace certgate::tls {

bool use_builtin_record_ciphers();

// For the startup line: "built-in record ciphers" or "provider record ciphers".
std::string record_ciphers_description();

}  // namespace certgate::tls
