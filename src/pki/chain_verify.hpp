#pragma once
// Validates a presented certificate chain against one site's TrustStore (offline: local CRLs).
// The one place where OpenSSL's X509_V_ERR_* codes become certgate's ChainFault.
#include "auth/evidence.hpp"
#include "pki/trust_store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace certgate::pki {

enum class Detail { Brief, Full };  // Full fills ChainReport::elements (CLI, explain)

// Revocation material beyond the site's local CRLs: fetched or cached CRLs, OCSP answers,
// issuer certificates from AIA. Supplied by revocation/ (pki/ itself never fetches); the
// verification asks it, and tells it what was missing so it can be fetched and tried again.
class RevocationSource {
 public:
  virtual ~RevocationSource() = default;
  // Adds the CRLs and issuer certificates known for `leaf` and the untrusted `pool`.
  virtual void add_material(X509* leaf, STACK_OF(X509) * pool, STACK_OF(X509_CRL) * crls,
                            STACK_OF(X509) * extra_untrusted) = 0;
  // OpenSSL has no usable CRL for `cert` (`code` says why; `issuer` may be null). Returns the
  // code to record: X509_V_OK when another source (OCSP) vouches for the certificate,
  // X509_V_ERR_CERT_REVOKED when it says revoked, else `code`.
  virtual int crl_problem(X509* cert, X509* issuer, int code) = 0;
  // No issuer was found for `cert`.
  virtual void missing_issuer(X509* cert) = 0;
  // Words added to a revocation fault of `cert` ("CRL http://x could not be fetched: ...").
  virtual std::string unknown_detail(X509* cert) = 0;
  // How `cert` was found revoked when no local CRL says so ("" = by a CRL).
  virtual std::string revoked_detail(X509* cert) = 0;
  // Where the good status of `cert` came from ("" = the local CRLs).
  virtual std::string good_detail(X509* cert) = 0;
};

// The X509_V_ERR_* code → ChainFault table (any code it does not know is a Constraint fault).
auth::ChainFault classify_verify_error(int code);

// Fails closed: any error OpenSSL reports, or a usage mismatch, becomes a fault.
// `presented` holds what the client sent after the leaf (may be null).
// `at` replaces the current time (unix seconds) for `verify --at`.
auth::ChainReport verify_chain(const TrustStore& trust, X509* leaf, STACK_OF(X509) * presented,
                               std::optional<std::int64_t> at = std::nullopt,
                               Detail detail = Detail::Brief, RevocationSource* source = nullptr);

// Whether certificates chain to one site's trust anchors by their signatures and constraints,
// revocation aside: the gate before anything a certificate names is fetched or kept (nothing
// is fetched for a chain no anchor vouches for). Holds its own references, so the revocation
// store may use it on its own thread after the configuration generation that made it is gone.
class AnchorCheck {
 public:
  // `untrusted`: the certificates a path may go through (presented, configured, fetched); `at`:
  // the time the path must be valid at (the validation's, never the system's own).
  AnchorCheck(const TrustStore& trust, STACK_OF(X509) * untrusted, std::int64_t at);
  // The verified path from `cert` to an anchor, `cert` first; empty when there is none.
  std::vector<X509Ptr> path(X509* cert) const;
  // `candidate` may issue `subject` (name, AKI, key usage) and chains to an anchor.
  bool vouches_issuer(X509* candidate, X509* subject) const;
  // The certificate named as `crl`'s issuer whose key verifies it and which chains to an
  // anchor; null when there is none.
  X509Ptr crl_signer(X509_CRL* crl) const;

 private:
  X509StorePtr store_;
  X509StackPtr untrusted_;
  TrustOptions options_;
  std::int64_t at_;
};

}  // namespace certgate::pki
