#pragma once
// One site's trust settings, decoded once per configuration generation and shared read-only by
// every loop thread: trusted issuers, configured intermediates, local CRLs, checking options.
#include "pki/openssl_ptr.hpp"

#include <string>
#include <vector>

namespace certgate::pki {

enum class RevocationMode { CacheOnly, Off };

struct TrustOptions {
  RevocationMode revocation = RevocationMode::CacheOnly;
  bool usage_check = true;  // leaf EKU must allow clientAuth (behaviour.md §2 "usage")
  // RFC 5280 §6.1.1 initial policy inputs; empty policies = {anyPolicy}.
  std::vector<std::string> policies;
  bool explicit_policy = false;
  bool inhibit_policy_mapping = false;
  bool inhibit_any_policy = false;
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

 private:
  std::vector<X509Ptr> anchors_;
  X509StorePtr store_;
  X509StackPtr intermediates_;
  CrlStackPtr crls_;
  TrustOptions options_;
};

}  // namespace certgate::pki
