#pragma once
// The token-login session cookie: it stands for the certificate chain that signed the challenge,
// at locations with token_login = true, until it expires. It carries the chain itself (DER), so
// any instance holding the same cookie key can re-validate it without shared memory, and its
// HMAC-SHA256 under that key (compared in constant time) makes it unforgeable. The pipeline
// validates the chain again on every request, as it would a TLS client certificate: a revoked
// certificate stops working before the cookie expires.
//
// value = base64url(payload) "." base64url(HMAC-SHA256(key, "certgate-token-v1|" payload))
// payload = site name, NUL, expiry (unix seconds, decimal), NUL, DER certificates, each
// preceded by its length in 2 big-endian bytes.
#include "pki/openssl_ptr.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::token {

constexpr std::size_t kMaxCookieValue = 3800;  // browsers keep 4096 bytes per cookie, name included

// Empty when the chain is too large for a cookie.
std::string make_cookie(std::string_view key, std::string_view site, std::int64_t expires,
                        const std::vector<pki::X509Ptr>& certs);

struct CookieChain {
  std::vector<pki::X509Ptr> certs;  // leaf first
  std::int64_t expires = 0;
};
// The chain the cookie stands for; nullopt when the MAC, the site or the expiry does not hold.
std::optional<CookieChain> open_cookie(std::string_view key, std::string_view site, std::int64_t now,
                                       std::string_view value);

// The value of cookie `name` in a Cookie header ("a=1; name=v; b=2"); empty when absent.
std::string_view cookie_value(std::string_view header, std::string_view name);

}  // namespace certgate::token
