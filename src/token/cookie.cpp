#include "token/cookie.hpp"

#include "token/signed_response.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>

namespace certgate::token {
namespace {

constexpr std::string_view kContext = "certgate-token-v1|";

bool mac(std::string_view key, std::string_view payload, unsigned char out[32]) {
  std::string data(kContext);
  data += payload;
  unsigned int len = 0;
  return HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
              data.size(), out, &len) != nullptr &&
         len == 32;
}

}  // namespace

std::string make_cookie(std::string_view key, std::string_view site, std::int64_t expires,
                        const std::vector<pki::X509Ptr>& certs) {
  std::string payload(site);
  payload += '\0';
  payload += std::to_string(expires);
  payload += '\0';
  for (const auto& c : certs) {
    unsigned char* der = nullptr;
    const int n = i2d_X509(c.get(), &der);
    if (n <= 0 || n > 0xffff) {
      OPENSSL_free(der);
      return {};
    }
    payload += static_cast<char>(n >> 8);
    payload += static_cast<char>(n & 0xff);
    payload.append(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
  }
  unsigned char tag[32];
  if (!mac(key, payload, tag)) return {};
  std::string value = base64url(reinterpret_cast<const unsigned char*>(payload.data()), payload.size());
  value += '.';
  value += base64url(tag, sizeof tag);
  if (value.size() > kMaxCookieValue) return {};
  return value;
}

std::optional<CookieChain> open_cookie(std::string_view key, std::string_view site, std::int64_t now,
                                       std::string_view value) {
  if (value.size() > kMaxCookieValue) return std::nullopt;
  const auto dot = value.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string payload, tag;
  if (!decode_base64(value.substr(0, dot), payload) || !decode_base64(value.substr(dot + 1), tag) || tag.size() != 32)
    return std::nullopt;
  unsigned char expected[32];
  if (!mac(key, payload, expected) || CRYPTO_memcmp(expected, tag.data(), 32) != 0) return std::nullopt;
  // Authentic from here on: the fields are ours, but still checked as if they were not.
  std::string_view p = payload;
  const auto s1 = p.find('\0');
  if (s1 == std::string_view::npos || p.substr(0, s1) != site) return std::nullopt;
  p.remove_prefix(s1 + 1);
  const auto s2 = p.find('\0');
  if (s2 == std::string_view::npos) return std::nullopt;
  CookieChain out;
  auto [end, ec] = std::from_chars(p.data(), p.data() + s2, out.expires);
  if (ec != std::errc{} || end != p.data() + s2 || now >= out.expires) return std::nullopt;
  p.remove_prefix(s2 + 1);
  while (!p.empty()) {
    if (p.size() < 2 || out.certs.size() >= kMaxChain) return std::nullopt;
    const std::size_t n = (static_cast<unsigned char>(p[0]) << 8) | static_cast<unsigned char>(p[1]);
    p.remove_prefix(2);
    if (n > p.size()) return std::nullopt;
    const unsigned char* der = reinterpret_cast<const unsigned char*>(p.data());
    pki::X509Ptr cert(d2i_X509(nullptr, &der, static_cast<long>(n)));
    if (!cert || der != reinterpret_cast<const unsigned char*>(p.data()) + n) return std::nullopt;
    out.certs.push_back(std::move(cert));
    p.remove_prefix(n);
  }
  if (out.certs.empty()) return std::nullopt;
  return out;
}

std::string_view cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const auto semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name && pair[name.size()] == '=')
      return pair.substr(name.size() + 1);
    if (semi == std::string_view::npos) break;
    header.remove_prefix(semi + 1);
  }
  return {};
}

}  // namespace certgate::token
