#pragma once
// The URLs a certificate names for revocation and path building.
#include <openssl/x509.h>

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace certgate::revocation {

struct DistributionPoint {
  std::string url;
  bool indirect = false;  // the point names a cRLIssuer: the CRL is signed by someone else
};

struct CertUrls {
  std::vector<DistributionPoint> crl;     // CRL Distribution Points (http, https, ldap)
  std::vector<std::string> delta_crl;     // Freshest CRL (delta CRL) points
  std::vector<std::string> ocsp;          // AIA id-ad-ocsp
  std::vector<std::string> ca_issuers;    // AIA id-ad-caIssuers
};

// `max_per_kind` bounds what one certificate can make the server fetch: at most that many
// distribution points (CRL Distribution Points and Freshest CRL together, in that order), OCSP
// responders and caIssuers URLs; the rest are ignored.
CertUrls cert_urls(X509* cert, std::size_t max_per_kind = std::numeric_limits<std::size_t>::max());

// Only these schemes are ever fetched: no file://, no gopher://, nothing a certificate could use
// to reach into the server's own machine by another protocol; no spaces or control characters
// (they would split a request line), nothing longer than 2048 bytes.
bool fetchable(const std::string& url);

}  // namespace certgate::revocation
