// The token login's parsing, signature check and cookie (src/token), on the scenario PKI's keys.
#include "token/cookie.hpp"
#include "token/signed_response.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <openssl/cms.h>
#include <openssl/pem.h>

namespace certgate::token {
namespace {

pki::X509Ptr cert(const std::string& name) {
  pki::BioPtr bio(BIO_new_file(test::pki(name + ".pem").c_str(), "r"));
  return pki::X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}
pki::EvpPkeyPtr key(const std::string& name) {
  pki::BioPtr bio(BIO_new_file(test::pki(name + ".key").c_str(), "r"));
  return pki::EvpPkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::string cms_der(const std::string& nonce, X509* signer, EVP_PKEY* k) {
  pki::BioPtr data(BIO_new_mem_buf(nonce.data(), static_cast<int>(nonce.size())));
  CMS_ContentInfo* cms = CMS_sign(signer, k, nullptr, data.get(), CMS_DETACHED | CMS_BINARY);
  unsigned char* der = nullptr;
  const int n = i2d_CMS_ContentInfo(cms, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  CMS_ContentInfo_free(cms);
  return out;
}

TEST(TokenResponse, NonceIs256BitsBase64url) {
  const std::string a = make_nonce(), b = make_nonce();
  EXPECT_EQ(a.size(), kNonceChars);
  EXPECT_TRUE(well_formed_nonce(a));
  EXPECT_NE(a, b);
  EXPECT_FALSE(well_formed_nonce(a.substr(1)));
  EXPECT_FALSE(well_formed_nonce(std::string(42, 'A') + "+"));
}

// A DER body whose last byte is white space was trimmed into garbage (found by the e2e test,
// about one signature in sixty): binary bodies are taken as they are.
TEST(TokenResponse, DerEndingInWhiteSpaceIsTakenWhole) {
  auto bob = cert("bob");
  auto k = key("bob");
  int found = 0;
  for (int i = 0; i < 2000 && found < 3; ++i) {
    const std::string nonce = make_nonce();
    const std::string der = cms_der(nonce, bob.get(), k.get());
    const char last = der.back();
    if (last != '\n' && last != ' ' && last != '\r' && last != '\t') continue;
    ++found;
    Parsed p = parse_and_verify(der, "application/pkcs7-signature", nonce);
    EXPECT_TRUE(p.ok) << p.error;
  }
  EXPECT_GT(found, 0);
}

TEST(TokenResponse, CmsOverAnotherNonceIsABadSignature) {
  auto bob = cert("bob");
  auto k = key("bob");
  const std::string der = cms_der(make_nonce(), bob.get(), k.get());
  Parsed p = parse_and_verify(der, "application/pkcs7-signature", make_nonce());
  EXPECT_FALSE(p.ok);
  EXPECT_TRUE(p.bad_signature);
}

// Hostile pass (docs/security.md "Token login: a hostile pass"): a SHA-1 SignerInfo verifies
// with OpenSSL, so it must be refused by name before the signature is checked.
TEST(TokenResponse, CmsWithAWeakDigestIsRefused) {
  auto bob = cert("bob");
  auto k = key("bob");
  const std::string nonce = make_nonce();
  pki::BioPtr data(BIO_new_mem_buf(nonce.data(), static_cast<int>(nonce.size())));
  CMS_ContentInfo* cms = CMS_sign(nullptr, nullptr, nullptr, nullptr, CMS_DETACHED | CMS_BINARY | CMS_PARTIAL);
  ASSERT_NE(CMS_add1_signer(cms, bob.get(), k.get(), EVP_sha1(), CMS_BINARY), nullptr);
  ASSERT_EQ(CMS_final(cms, data.get(), nullptr, CMS_DETACHED | CMS_BINARY), 1);
  unsigned char* der = nullptr;
  const int n = i2d_CMS_ContentInfo(cms, &der);
  std::string body(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  CMS_ContentInfo_free(cms);
  Parsed p = parse_and_verify(body, "application/pkcs7-signature", nonce);
  EXPECT_FALSE(p.ok);
  EXPECT_FALSE(p.bad_signature);
  EXPECT_NE(p.error.find("SHA-256"), std::string::npos) << p.error;
  EXPECT_TRUE(parse_and_verify(cms_der(nonce, bob.get(), k.get()), "application/pkcs7-signature", nonce).ok);
}

// Boost.JSON keeps the last of two equal members, other parsers the first: refused outright,
// also when the second spelling hides behind an escape.
TEST(TokenResponse, JsonMemberGivenTwiceIsRefused) {
  const std::string n = make_nonce();
  for (const std::string body : {"{\"nonce\":\"" + n + "\",\"nonce\":\"" + n + "\"}",
                                 "{\"nonce\":\"" + n + "\",\"\\u006eonce\":\"" + n + "\"}"}) {
    Parsed p = parse_and_verify(body, "application/json", {});
    EXPECT_FALSE(p.ok);
    EXPECT_EQ(p.error, "a JSON member is given more than once") << body;
  }
  // The same name in a nested object is not a second top-level member.
  Parsed p = parse_and_verify("{\"nonce\":{\"a\":1},\"x\":{\"a\":2}}", "application/json", {});
  EXPECT_NE(p.error, "a JSON member is given more than once");
}

TEST(TokenResponse, QueryAndJsonHelpers) {
  EXPECT_EQ(query_param("a=1&nonce=xyz&b", "nonce"), "xyz");
  EXPECT_EQ(query_param("xnonce=1", "nonce"), "");
  EXPECT_EQ(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
}

TEST(TokenCookie, RoundTripAndEveryRefusal) {
  const std::string k(32, 'k');
  std::vector<pki::X509Ptr> chain;
  chain.push_back(cert("bob"));
  chain.push_back(cert("issuing-ca"));
  const std::string v = make_cookie(k, "A", "staff", 1000, chain);
  ASSERT_FALSE(v.empty());
  auto open = open_cookie(k, "A", 999, v);
  ASSERT_TRUE(open);
  EXPECT_EQ(open->certs.size(), 2u);
  EXPECT_EQ(X509_cmp(open->certs[0].get(), chain[0].get()), 0);
  EXPECT_FALSE(open_cookie(k, "A", 1000, v)) << "expired";
  EXPECT_FALSE(open_cookie(k, "B", 999, v)) << "another site";
  EXPECT_FALSE(open_cookie(std::string(32, 'x'), "A", 999, v)) << "another key";
  // Another leaf behind the same MAC'd claims.
  std::vector<pki::X509Ptr> other;
  other.push_back(cert("alice"));
  const std::string w = make_cookie(k, "A", "staff", 1000, other);
  const std::string swapped = v.substr(0, v.find('~')) + w.substr(w.find('~'));
  EXPECT_FALSE(open_cookie(k, "A", 999, swapped));
  EXPECT_FALSE(open_cookie(k, "A", 999, v.substr(0, v.find('~')))) << "no chain";
  EXPECT_FALSE(open_cookie(k, "A", 999, v + "A")) << "trailing bytes";
}

}  // namespace
}  // namespace certgate::token
