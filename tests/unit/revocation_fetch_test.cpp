// What the revocation fetcher may do for a certificate: the trust gate (AnchorCheck), the
// per-certificate URL cap, the URLs it refuses, fetch state keyed by (URL, issuer), the
// /metrics label escaping, and the configuration keys that bound it.
#include "config/config.hpp"
#include "pki/chain_verify.hpp"
#include "pki/load.hpp"
#include "revocation/cert_urls.hpp"
#include "revocation/store.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

namespace certgate {
namespace {

using test::pki;

struct LabelRow {
  const char* in;
  const char* out;
};

TEST(RevocationMetrics, LabelValuesAreEscaped) {
  const LabelRow rows[] = {
      {"http://a/b.crl", "http://a/b.crl"},
      {"a\"b", "a\\\"b"},
      {"a\\b", "a\\\\b"},
      {"a\nb", "a\\nb"},
      {"a\rb", "a%0Db"},
      {"a\r\n} 1\nevil_metric 2", "a%0D\\n} 1\\nevil_metric 2"},
      {"\x01\x7f", "%01%7F"},
  };
  for (const auto& r : rows) EXPECT_EQ(revocation::metrics_label(r.in), r.out) << r.in;
}

struct UrlRow {
  const char* url;
  bool fetchable;
};

TEST(RevocationUrls, OnlyPlainHttpHttpsAndLdapUrlsAreFetched) {
  const UrlRow rows[] = {
      {"http://127.0.0.1/a.crl", true},
      {"https://ca.example/a.crl", true},
      {"ldap://dir.example/cn=x?certificateRevocationList;binary", true},
      {"ldaps://dir.example/cn=x?cACertificate;binary", true},
      {"ldap:///CN=Issuing%20CA,CN=CDP,DC=corp?certificateRevocationList?base", true},  // [server.fetch] ldap_hosts
      {"ftp://127.0.0.1/a.crl", false},
      {"file:///etc/passwd", false},
      {"gopher://127.0.0.1:6379/_x", false},
      {"http://a/b\r\nX-Injected: 1", false},
      {"http://a/b c", false},
      {"http://a/\x7f", false},
  };
  for (const auto& r : rows) EXPECT_EQ(revocation::fetchable(r.url), r.fetchable) << r.url;
  EXPECT_FALSE(revocation::fetchable("http://a/" + std::string(3000, 'x')));
}

// A certificate naming `cdp` distribution points, `delta` Freshest CRL points, `ocsp` responders
// and `issuers` caIssuers URLs.
pki::X509Ptr cert_naming(int cdp, int delta, int ocsp, int issuers) {
  pki::X509Ptr c(X509_new());
  auto list = [](const char* prefix, int n, const char* method) {
    std::string v;
    for (int i = 0; i < n; ++i)
      v += (v.empty() ? "" : ",") + std::string(method) + "URI:http://127.0.0.1/" + prefix + std::to_string(i);
    return v;
  };
  auto add = [&](int nid, const std::string& value) {
    if (value.empty()) return;
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, nid, value.c_str());
    ASSERT_NE(ext, nullptr) << value;
    X509_add_ext(c.get(), ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_crl_distribution_points, list("cdp", cdp, ""));
  add(NID_freshest_crl, list("delta", delta, ""));
  std::string aia = list("ocsp", ocsp, "OCSP;");
  const std::string ca = list("ca", issuers, "caIssuers;");
  aia += (!aia.empty() && !ca.empty() ? "," : "") + ca;
  add(NID_info_access, aia);
  return c;
}

struct CapRow {
  int cdp, delta, ocsp, issuers;
  std::size_t cap;
  std::size_t want_cdp, want_delta, want_ocsp, want_issuers;
};

TEST(RevocationUrls, EachCertificateNamesAtMostTheCapPerKind) {
  const CapRow rows[] = {
      {1, 1, 1, 1, 4, 1, 1, 1, 1},
      {1, 500, 0, 0, 4, 1, 3, 0, 0},    // distribution points first, then deltas, 4 together
      {10, 10, 10, 10, 4, 4, 0, 4, 4},
      {0, 300, 0, 0, 4, 0, 4, 0, 0},
      {2, 2, 2, 2, 1, 1, 0, 1, 1},
  };
  for (const auto& r : rows) {
    auto c = cert_naming(r.cdp, r.delta, r.ocsp, r.issuers);
    auto u = revocation::cert_urls(c.get(), r.cap);
    EXPECT_EQ(u.crl.size(), r.want_cdp) << r.cdp << "/" << r.delta << " cap " << r.cap;
    EXPECT_EQ(u.delta_crl.size(), r.want_delta) << r.cdp << "/" << r.delta << " cap " << r.cap;
    EXPECT_EQ(u.ocsp.size(), r.want_ocsp);
    EXPECT_EQ(u.ca_issuers.size(), r.want_issuers);
  }
  auto all = revocation::cert_urls(cert_naming(3, 3, 3, 3).get());  // no cap: the CLI lists all
  EXPECT_EQ(all.crl.size() + all.delta_crl.size() + all.ocsp.size() + all.ca_issuers.size(), 12u);
}

std::shared_ptr<pki::TrustStore> trusting(const char* root) {
  pki::TrustOptions o;
  o.revocation = pki::RevocationMode::Online;
  return std::make_shared<pki::TrustStore>(pki::load_certificates(pki(root)), std::vector<pki::X509Ptr>{},
                                           std::vector<pki::X509CrlPtr>{}, o);
}

TEST(RevocationGate, OnlyPathsThatVerifyUpToAnAnchorPass) {
  auto chain = pki::load_certificates(pki("alice-chain.pem"));
  pki::X509StackView rest(sk_X509_new_null());
  for (std::size_t i = 1; i < chain.size(); ++i) sk_X509_push(rest.get(), chain[i].get());
  const std::int64_t now = runtime::system_clock().unix_seconds();
  pki::AnchorCheck ours(*trusting("root-ca.pem"), rest.get(), now);
  EXPECT_EQ(ours.path(chain[0].get()).size(), 3u);  // alice, issuing CA, root
  EXPECT_TRUE(ours.vouches_issuer(chain[1].get(), chain[0].get()));
  EXPECT_FALSE(ours.vouches_issuer(chain[0].get(), chain[1].get()));
  pki::AnchorCheck theirs(*trusting("partner-root-ca.pem"), rest.get(), now);
  EXPECT_TRUE(theirs.path(chain[0].get()).empty());
  EXPECT_FALSE(theirs.vouches_issuer(chain[1].get(), chain[0].get()));

  auto crls = pki::load_crls(pki("crl/issuing-ca.crl"));
  ASSERT_FALSE(crls.empty());
  EXPECT_NE(ours.crl_signer(crls[0].get()), nullptr);
  EXPECT_EQ(theirs.crl_signer(crls[0].get()), nullptr);
}

TEST(RevocationStore, FetchStateIsKeyedByUrlAndIssuer) {
  auto alice = pki::load_certificates(pki("alice-chain.pem"));
  auto partner = pki::load_certificates(pki("partner-root-ca.pem"));
  auto shared = [](pki::X509Ptr& c) {
    X509_up_ref(c.get());
    return std::shared_ptr<X509>(c.get(), X509_free);
  };
  revocation::Need a, b;
  a.kind = b.kind = revocation::Kind::Crl;
  a.url = b.url = "http://127.0.0.1/issuing.crl";
  a.issuer = shared(alice[1]);
  b.issuer = shared(partner[0]);
  EXPECT_NE(a.key(), b.key());
  b.issuer = shared(alice[1]);
  EXPECT_EQ(a.key(), b.key());
}

std::string config_error(const std::string& server_keys) {
  return test::config_error("[server]\n" + server_keys +
                            "\n[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                            "certificate = \"server.pem\"\n");
}

TEST(RevocationConfig, FetchBoundsHaveSaneDefaultsAndRanges) {
  EXPECT_EQ(config::ServerSettings{}.revocation_urls_per_certificate, 4u);
  EXPECT_EQ(config::ServerSettings{}.revocation_concurrent_fetches, 16u);
  EXPECT_EQ(config_error("revocation_urls_per_certificate = 8\nrevocation_concurrent_fetches = 4"), "");
  std::string e = config_error("revocation_urls_per_certificate = 0");
  EXPECT_NE(e.find("c.toml:2:35: server.revocation_urls_per_certificate: must be between 1 and 64"),
            std::string::npos) << e;
  e = config_error("revocation_concurrent_fetches = 100000");
  EXPECT_NE(e.find("c.toml:2:33: server.revocation_concurrent_fetches: must be between 1 and 1024"),
            std::string::npos) << e;
  e = config_error("revocation_concurrent_fetches = \"many\"");
  EXPECT_NE(e.find("server.revocation_concurrent_fetches: expected an integer"), std::string::npos) << e;
}

}  // namespace
}  // namespace certgate
