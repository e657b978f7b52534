#pragma once
// One site's trust settings, decoded once per configuration generation and shared read-only by
// every loop thread: trusted issuers, configured intermediates, local CRLs, checking options.
#include "pki/openssl_ptr.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace certgate::pki {

// Online: fetch from CDP / OCSP / AIA (revocation/); CacheOnly: local CRLs and the cache only.
enum class RevocationMode { Online, CacheOnly, Off };

struct TrustOptions {
  RevocationMode revocation = RevocationMode::CacheOnly;
  bool prefer_ocsp = false;              // ask OCSP before the CRL distribution points
  std::int64_t freshness_seconds = 0;    // a fetched CRL older than this is fetched again; 0 = nextUpdate
  std::uint32_t url_timeout_ms = 15000;  // per fetch
  bool soft_fail = false;                // unknown status accepted (and logged) instead of 403.13
  std::int64_t retry_seconds = 30;       // a URL that brought nothing fresh is not asked again sooner
  bool usage_check = true;  // EKU of leaf and CAs must allow clientAuth (behaviour.md §2 "usage")
  // RFC 5280 §6.1.1 initial policy inputs; empty policies = {anyPolicy}.
  std::vector<std::string> policies;
  bool explicit_policy = false;
  bool inhibit_policy_mapping = false;
  bool inhibit_any_policy = false;
  // Weak cryptography (security level 2 by default): RSA and DSA keys anywhere in the path,
  // trust anchor included, need this many bits; EC and other keys 112 bits of security (P-224
  // and up). Lowering it, or allowing SHA-1, weakens the site (legacy smart cards only).
  int min_rsa_bits = 2048;
  bool allow_sha1 = false;  // SHA-1 signatures below the trust anchor; MD5 and older never
  bool x509_strict = true;  // RFC 5280 profile checks (OpenSSL's X509_V_FLAG_X509_STRICT)
  int max_chain_depth = 8;  // CA certificates between the leaf and its trust anchor
};

class TrustStore {
 public:
  // Throws std::invalid_argument for a bad policy OID.
  TrustStore(std::vector<X509Ptr> anchors, std::vector<X509Ptr> intermediates,
             std::vector<X509CrlPtr> crls, TrustOptions options);

  X509_STORE* store() const { return store_.get(); }
  STACK_OF(X509) * intermediates() const { return intermediates_.get(); }
  STACK_OF(X509_CRL) * crls() const { return crls_.get(); }
  const TrustOptions& options() const { return options_; }
  const std::vector<X509Ptr>& anchors() const { return anchors_; }
  // The same issuers, intermediates and CRLs with other checking options (`verify --revocation`).
  std::shared_ptr<TrustStore> with_options(TrustOptions options) const;

 private:
  std::vector<X509Ptr> anchors_;
  X509StorePtr store_;
  X509StackPtr intermediates_;
  CrlStackPtr crls_;
  TrustOptions options_;
};

}  // namespace certgate::pki
