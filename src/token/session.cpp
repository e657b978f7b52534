#include "token/session.hpp"

#include "session/token.hpp"
#include "token/cookie.hpp"

#include <ctime>

namespace certgate::token {

tls::TlsFacts* CookieSession::facts(const runtime::SiteRuntime& site, std::uint64_t generation,
                                    std::string_view cookie_header, std::int64_t now,
                                    const tls::TlsFacts* connection) {
  const auto& tl = site.cfg.token_login;
  const std::string_view value = session::cookie_value(cookie_header, tl.cookie_name);
  if (value.empty()) return nullptr;
  if (facts_ && value == value_ && site.index == site_ && generation == generation_ && now < expires_) return &*facts_;
  facts_.reset();
  value_.clear();
  auto chain = open_cookie(tl.cookie_key, site.cfg.name, now, value);
  if (!chain) return nullptr;
  facts_ = facts_for(chain->certs, connection);
  value_.assign(value);
  site_ = site.index;
  generation_ = generation;
  expires_ = chain->expires;
  return &*facts_;
}

tls::TlsFacts facts_for(const std::vector<pki::X509Ptr>& certs, const tls::TlsFacts* connection) {
  tls::TlsFacts f = tls::TlsFacts::from_certificates(certs, true);
  f.tls = connection != nullptr;
  f.cipher_bits = connection ? connection->cipher_bits : 0;
  if (connection) {
    f.protocol = connection->protocol;
    f.cipher = connection->cipher;
    f.sni = connection->sni;
  }
  return f;
}

std::int64_t not_after(X509* cert) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return INT64_MAX;
  return static_cast<std::int64_t>(timegm(&tm));
}

}  // namespace certgate::token
