#include "revocation/cert_urls.hpp"

#include <openssl/x509v3.h>

namespace certgate::revocation {
namespace {

std::string uri_of(const GENERAL_NAME* gn) {
  if (gn == nullptr || gn->type != GEN_URI) return "";
  const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
}

void points(X509* cert, int nid, std::vector<DistributionPoint>& out) {
  auto* dps = static_cast<CRL_DIST_POINTS*>(X509_get_ext_d2i(cert, nid, nullptr, nullptr));
  for (int i = 0; dps && i < sk_DIST_POINT_num(dps); ++i) {
    const DIST_POINT* dp = sk_DIST_POINT_value(dps, i);
    if (dp->distpoint == nullptr || dp->distpoint->type != 0) continue;  // fullName only
    const GENERAL_NAMES* names = dp->distpoint->name.fullname;
    for (int j = 0; j < sk_GENERAL_NAME_num(names); ++j) {
      std::string u = uri_of(sk_GENERAL_NAME_value(names, j));
      if (!u.empty()) out.push_back({u, dp->CRLissuer != nullptr});
    }
  }
  CRL_DIST_POINTS_free(dps);
}

}  // namespace

bool fetchable(const std::string& url) {
  if (url.size() > 2048) return false;
  for (char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0 ||
         url.rfind("ldap://", 0) == 0 || url.rfind("ldaps://", 0) == 0;
}

CertUrls cert_urls(X509* cert, std::size_t max_per_kind) {
  CertUrls u;
  points(cert, NID_crl_distribution_points, u.crl);
  if (u.crl.size() > max_per_kind) u.crl.resize(max_per_kind);
  std::vector<DistributionPoint> delta;
  points(cert, NID_freshest_crl, delta);
  for (auto& d : delta)
    if (u.crl.size() + u.delta_crl.size() < max_per_kind) u.delta_crl.push_back(d.url);
  auto* aia = static_cast<AUTHORITY_INFO_ACCESS*>(X509_get_ext_d2i(cert, NID_info_access, nullptr, nullptr));
  for (int i = 0; aia && i < sk_ACCESS_DESCRIPTION_num(aia); ++i) {
    const ACCESS_DESCRIPTION* ad = sk_ACCESS_DESCRIPTION_value(aia, i);
    std::string url = uri_of(ad->location);
    if (url.empty()) continue;
    const int method = OBJ_obj2nid(ad->method);
    if (method == NID_ad_OCSP && u.ocsp.size() < max_per_kind) u.ocsp.push_back(url);
    else if (method == NID_ad_ca_issuers && u.ca_issuers.size() < max_per_kind) u.ca_issuers.push_back(url);
  }
  AUTHORITY_INFO_ACCESS_free(aia);
  return u;
}

}  // namespace certgate::revocation
