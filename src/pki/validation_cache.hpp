#pragma once
// Results of successful chain validations, per site and configuration generation, so a
// returning client (a new connection or a resumed session) skips the chain's signature and CRL
// checks; the TLS handshake still verifies its CertificateVerify every time.
// Safe by construction: within a generation the trust anchors and local CRLs are fixed, so a
// result can only change with time or with what the revocation store learns; an entry expires at
// the earliest notAfter of the chain or nextUpdate of a CRL it used, and is ignored once the
// store's revocation epoch has moved past the one it was computed under (a fetched CRL or OCSP
// answer that may revoke something). A reload builds new sites with empty caches. Failures are
// not cached.
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
    std::int64_t expires = 0;             // unix seconds: validate again from then on
  };
  // `epoch`: the revocation store's current epoch; an entry remembered under another is a miss.
  std::optional<Hit> find(const std::string& key, std::int64_t now, std::uint64_t epoch = 0);
  // The mapping depends only on the leaf and the generation: kept with the validation, so a
  // returning client (resumed or not) skips computing it. No-op when the chain is not cached.
  void remember_mapping(const std::string& key, const auth::Outcome& mapped);
  // Until when a successful report of this chain holds: the earliest notAfter / CRL nextUpdate
  // involved, `valid_until` (fetched CRLs / OCSP answers used), and an hour at most.
  static std::int64_t lifetime(const TrustStore& trust, X509* leaf, STACK_OF(X509) * chain,
                               std::int64_t now, std::int64_t valid_until = INT64_MAX);
  // Remembers a successful report until `expires` (lifetime()), computed under revocation
  // epoch `epoch` (read before the validation started).
  void remember(const std::string& key, const auth::ChainReport& report, std::int64_t now,
                std::int64_t expires, std::uint64_t epoch = 0);

 private:
  struct Entry {
    auth::ChainReport report;
    std::int64_t expires;
    std::uint64_t epoch;
    std::optional<auth::Outcome> mapped;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::size_t max_;
};

}  // namespace certgate::pki
