#pragma once
// The token-login answer to a challenge (docs/token-login.md): who signed the nonce, and was it
// really signed by the key of the certificate sent. Pure parsing and OpenSSL: no I/O, no state
// (the nonce's single use is the caller's), so it is unit-tested and fuzzed on its own.
//
// Two forms:
//  - JSON {"nonce", "certificate_chain": [PEM, ...], "algorithm", "signature"}: the signature
//    over the nonce's ASCII bytes, base64 (or base64url); ECDSA as DER or as WebCrypto's raw r||s.
//  - a detached CMS / PKCS#7 SignedData over the nonce's ASCII bytes (openssl cms -sign -binary,
//    token middleware), DER, PEM or bare base64, with the nonce in the query (?nonce=...).
#include "pki/openssl_ptr.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::token {

constexpr std::size_t kMaxChain = 8;        // certificates in one answer, leaf included
constexpr std::size_t kNonceBytes = 32;     // 256 random bits
constexpr std::size_t kNonceChars = 43;     // base64url without padding

// A fresh nonce: base64url (no padding) of 256 bits from the CSPRNG; empty if it failed.
std::string make_nonce();
bool well_formed_nonce(std::string_view nonce);

struct SignedResponse {
  std::string nonce;
  std::vector<pki::X509Ptr> certs;  // leaf (the signer) first
  std::string form;                 // "json ES256", "cms": for the log
};

struct Parsed {
  bool ok = false;
  bool bad_signature = false;  // well formed, but the signature is not the certificate key's
  std::string error;           // why it was refused (for the log and the error page)
  SignedResponse response;
};

// `content_type`: the request's (application/json, or a CMS type: application/pkcs7-signature,
// pkcs7-mime, cms, octet-stream; anything else is refused); `query_nonce`: the nonce from the
// target's query (CMS form).
Parsed parse_and_verify(std::string_view body, std::string_view content_type, std::string_view query_nonce);

// base64 or base64url, padded or not; nullopt on any other character.
bool decode_base64(std::string_view in, std::string& out);
std::string base64url(const unsigned char* data, std::size_t n);

// The value of `name` in a query string ("a=1&nonce=x"), as it is (nonces need no decoding).
std::string_view query_param(std::string_view query, std::string_view name);
// A JSON string literal, quotes included.
std::string json_string(std::string_view s);

}  // namespace certgate::token
