#include "http/health.hpp"

#include "pki/x509_text.hpp"

#include <openssl/x509.h>

namespace certgate::http {
namespace {

std::int64_t asn1_unix(const ASN1_TIME* t) {
  if (!t) return 0;
  struct tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

using CachedCrls = std::vector<std::pair<std::string, std::shared_ptr<const revocation::CrlEntry>>>;

// A CRL from `ca` that is still current at `now`, among the site's own files or the cache.
bool has_current_crl(X509* ca, const pki::TrustStore& trust, const CachedCrls& cached, std::int64_t now) {
  const X509_NAME* name = X509_get_subject_name(ca);
  STACK_OF(X509_CRL)* local = trust.crls();
  for (int i = 0; local && i < sk_X509_CRL_num(local); ++i) {
    X509_CRL* crl = sk_X509_CRL_value(local, i);
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl);
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), name) == 0 && (!next || asn1_unix(next) > now)) return true;
  }
  for (const auto& [url, entry] : cached)
    if (entry && entry->crl && X509_NAME_cmp(X509_CRL_get_issuer(entry->crl.get()), name) == 0 &&
        (entry->next_update == 0 || entry->next_update > now))
      return true;
  return false;
}

}  // namespace

std::vector<std::string> not_ready_reasons(const ServerState& state) {
  std::vector<std::string> out;
  const auto gen = state.current.load();
  if (!gen || !gen->snap) return {"no configuration loaded"};
  if (state.stopping.load()) out.push_back("stopping");
  if (!state.listening.load()) out.push_back("listeners not open");
  const std::int64_t now = state.clock->unix_seconds();
  // One copy of the cache's list per probe, not one per issuer: a balancer asks every second or
  // two, on a loop that also serves clients.
  CachedCrls cached;
  bool copied = false;
  for (const auto& site : gen->snap->sites) {
    if (site.cfg.client_certificates.revocation != config::Revocation::CacheOnly || !site.trust) continue;
    std::vector<X509*> cas;
    for (const auto& a : site.trust->anchors()) cas.push_back(a.get());
    STACK_OF(X509)* inter = site.trust->intermediates();
    for (int i = 0; inter && i < sk_X509_num(inter); ++i) cas.push_back(sk_X509_value(inter, i));
    if (!copied && state.revocation) cached = state.revocation->crls();
    copied = true;
    for (X509* ca : cas)
      if (!has_current_crl(ca, *site.trust, cached, now))
        out.push_back("site \"" + site.cfg.name + "\" (revocation = cache-only): no current CRL from " +
                      pki::subject_text(ca));
  }
  return out;
}

}  // namespace certgate::http
