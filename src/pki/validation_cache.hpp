#pragma once
// Results of successful chain validations, per site and configuration generation, so a
// returning client (a new connection or a resumed session) skips the chain's signature and CRL
// checks; the TLS handshake still verifies its CertificateVerify every time.
// Safe by construction: within a generation the trust anchors and CRLs are fixed, so a result
// can only change with time; an entry expires at the earliest notAfter of the chain or
// nextUpdate of a CRL it used. A reload builds new sites with empty caches. Failures are not
// cached.
#include "auth/evidence.hpp"
#include "auth/verdict.hpp"
#include "pki/trust_store.hpp"

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace certgate::pki {

class ValidationCache {
 public:
  explicit ValidationCache(std::size_t max_entries = 50000) : max_(max_entries) {}

  // SHA-256 over the leaf and the presented chain, as DER.
  static std::string key(X509* leaf, STACK_OF(X509) * chain);

  struct Hit {
    auth::ChainReport report;
    std::optional<auth::Outcome> mapped;  // the site's one-to-one / many-to-one result, once known
  };
  std::optional<Hit> find(const std::string& key, std::int64_t now);
  // The mapping depends only on the leaf and the generation: kept with the validation, so a
  // returning client (resumed or not) skips computing it. No-op when the chain is not cached.
  void remember_mapping(const std::string& key, const auth::Outcome& mapped);
  // Remembers a successful report until the earliest notAfter / CRL nextUpdate involved.
  void remember(const std::string& key, const auth::ChainReport& report, const TrustStore& trust,
                X509* leaf, STACK_OF(X509) * chain, std::int64_t now,
                std::int64_t valid_until = INT64_MAX);  // fetched CRLs / OCSP answers used

 private:
  struct Entry {
    auth::ChainReport report;
    std::int64_t expires;
    std::optional<auth::Outcome> mapped;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::size_t max_;
};

}  // namespace certgate::pki
