#pragma once
// The token-login session cookie: it stands for the certificate chain that signed the challenge,
// at locations with token_login = true, until it expires. Sealed by src/session (the MAC'd
// claims shared with the on-demand step-up cookie, Kind::TokenSession: {site, user, leaf SHA-256,
// expiry}, HMAC-SHA256 under the site's cookie key, checked in constant time), followed by the
// chain itself (DER, base64url): any instance holding the same key can then take the cookie
// without a shared certificate cache. The chain is not under the MAC, the leaf is (its SHA-256
// is a claim); intermediates are only chain-building hints the pipeline validates anyway. The
// pipeline validates the chain again on every request, as it would a TLS client certificate: a
// revoked certificate stops working before the cookie expires.
//
// value = session::seal(...) "~" base64url(for each certificate: 2-byte big-endian length, DER)
#include "pki/openssl_ptr.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::token {

constexpr std::size_t kMaxCookieValue = 3800;  // browsers keep 4096 bytes per cookie, name included

// Empty when the chain is too large for a cookie.
std::string make_cookie(std::string_view key, std::string_view site, std::string_view user, std::int64_t expires,
                        const std::vector<pki::X509Ptr>& certs);

struct CookieChain {
  std::vector<pki::X509Ptr> certs;  // leaf first
  std::int64_t expires = 0;
};
// The chain the cookie stands for; nullopt when the MAC, the site, the expiry or the leaf does
// not hold.
std::optional<CookieChain> open_cookie(std::string_view key, std::string_view site, std::int64_t now,
                                       std::string_view value);

}  // namespace certgate::token
