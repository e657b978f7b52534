#include "token/cookie.hpp"

#include "session/cert_cache.hpp"
#include "session/token.hpp"
#include "token/signed_response.hpp"

#include <openssl/crypto.h>

namespace certgate::token {

std::string make_cookie(std::string_view key, std::string_view site, std::string_view user, std::int64_t expires,
                        const std::vector<pki::X509Ptr>& certs) {
  if (certs.empty() || site.size() > 1024 || user.size() > 1024) return {};
  std::string chain;
  for (const auto& c : certs) {
    unsigned char* der = nullptr;
    const int n = i2d_X509(c.get(), &der);
    if (n <= 0 || n > 0xffff) {
      OPENSSL_free(der);
      return {};
    }
    chain += static_cast<char>(n >> 8);
    chain += static_cast<char>(n & 0xff);
    chain.append(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
  }
  session::Claims claims{std::string(site), std::string(user), session::leaf_sha256(certs[0].get()), expires, {}, {}};
  // No configuration generation: every request re-validates the chain under the configuration
  // of its own time, and instances sharing the key need not share a configuration digest.
  std::string value = session::seal(session::Key{std::string(key)}, session::Kind::TokenSession, claims);
  value += '~';
  value += base64url(reinterpret_cast<const unsigned char*>(chain.data()), chain.size());
  if (value.size() > kMaxCookieValue) return {};
  return value;
}

std::optional<CookieChain> open_cookie(std::string_view key, std::string_view site, std::int64_t now,
                                       std::string_view value) {
  if (value.size() > kMaxCookieValue) return std::nullopt;
  const auto tilde = value.find('~');
  if (tilde == std::string_view::npos) return std::nullopt;
  session::Claims claims;
  if (session::open(session::Key{std::string(key)}, session::Kind::TokenSession, value.substr(0, tilde), site, now, {},
                    claims) != session::Check::Ok)
    return std::nullopt;
  std::string chain;
  if (!decode_base64(value.substr(tilde + 1), chain)) return std::nullopt;
  CookieChain out;
  out.expires = claims.expires;
  std::string_view p = chain;
  while (!p.empty()) {
    if (p.size() < 2 || out.certs.size() >= kMaxChain) return std::nullopt;
    const std::size_t n = (static_cast<std::size_t>(static_cast<unsigned char>(p[0])) << 8) | static_cast<unsigned char>(p[1]);
    p.remove_prefix(2);
    if (n > p.size()) return std::nullopt;
    const unsigned char* der = reinterpret_cast<const unsigned char*>(p.data());
    pki::X509Ptr cert(d2i_X509(nullptr, &der, static_cast<long>(n)));
    if (!cert || der != reinterpret_cast<const unsigned char*>(p.data()) + n) return std::nullopt;
    out.certs.push_back(std::move(cert));
    p.remove_prefix(n);
  }
  // The leaf must be the one the MAC names; the rest is the client's, as in a TLS handshake.
  if (out.certs.empty()) return std::nullopt;
  const std::string sha = session::leaf_sha256(out.certs[0].get());
  if (sha.size() != claims.cert_sha256.size() || CRYPTO_memcmp(sha.data(), claims.cert_sha256.data(), sha.size()) != 0)
    return std::nullopt;
  return out;
}

}  // namespace certgate::token
