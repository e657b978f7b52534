// Offline chain validation against the scenario PKI (scripts/make-pki.sh): every fault the
// server can report, from real certificates.
#include "pki/chain_verify.hpp"
#include "pki/load.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

namespace certgate::pki {
namespace {

using auth::ChainFault;
using test::pki;

std::shared_ptr<TrustStore> trust(RevocationMode mode = RevocationMode::CacheOnly,
                                  bool usage = true, const char* root = "root-ca.pem") {
  std::vector<X509Ptr> anchors = load_certificates(pki(root));
  TrustOptions o;
  o.revocation = mode;
  o.usage_check = usage;
  return std::make_shared<TrustStore>(std::move(anchors), std::vector<X509Ptr>{},
                                      load_crls(pki("crl")), o);
}

auth::ChainReport check(const TrustStore& t, const std::string& user,
                        Detail detail = Detail::Brief) {
  auto certs = load_certificates(pki(user + "-chain.pem"));
  X509StackView rest(sk_X509_new_null());
  for (std::size_t i = 1; i < certs.size(); ++i) sk_X509_push(rest.get(), certs[i].get());
  return verify_chain(t, certs[0].get(), rest.get(), std::nullopt, detail);
}

struct Row {
  const char* user;
  ChainFault expected;
  const char* reason_part;
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.user; }

class Scenario : public ::testing::TestWithParam<Row> {};

TEST_P(Scenario, GivesExpectedFault) {
  static auto t = trust();
  const Row& row = GetParam();
  auto r = check(*t, row.user);
  EXPECT_EQ(r.fault, row.expected) << row.user << ": " << r.reason;
  EXPECT_NE(r.reason.find(row.reason_part), std::string::npos) << r.reason;
}

INSTANTIATE_TEST_SUITE_P(
    Pki, Scenario,
    ::testing::Values(Row{"alice", ChainFault::None, ""},
                      Row{"carol", ChainFault::Revoked, "was revoked on"},
                      Row{"dave", ChainFault::Expired, "expired"},
                      Row{"erin", ChainFault::NotYetValid, "is not valid before"},
                      Row{"frank", ChainFault::WrongUsage, "lacks clientAuth"},
                      Row{"gina", ChainFault::Expired, "chain certificate 'CN=Certgate Demo Old Issuing CA"},
                      Row{"hank", ChainFault::Revoked, "Revoked Issuing CA"},
                      Row{"ivan", ChainFault::RevocationUnknown, "no CRL from"},
                      Row{"judy", ChainFault::RevocationUnknown, "passed its nextUpdate"},
                      Row{"mallory", ChainFault::UntrustedRoot, "a CA with this name is trusted, but its key did not sign"},
                      Row{"paul", ChainFault::UntrustedRoot, "not in this site's trusted list"},
                      Row{"corrupt-sig", ChainFault::BadSignature, "does not verify"}),
    [](const auto& info) {
      std::string n = info.param.user;
      for (auto& c : n) if (c == '-') c = '_';
      return n;
    });

TEST(ChainVerify, RevocationOffIgnoresCrls) {
  auto t = trust(RevocationMode::Off);
  EXPECT_EQ(check(*t, "carol").fault, ChainFault::None);
  EXPECT_EQ(check(*t, "ivan").fault, ChainFault::None);
  EXPECT_EQ(check(*t, "dave").fault, ChainFault::Expired);
}

TEST(ChainVerify, UsageCheckCanBeTurnedOff) {
  auto t = trust(RevocationMode::CacheOnly, false);
  EXPECT_EQ(check(*t, "frank").fault, ChainFault::None);
}

TEST(ChainVerify, PartnerRootTrustsOnlyItsOwn) {
  auto t = trust(RevocationMode::CacheOnly, true, "partner-root-ca.pem");
  EXPECT_EQ(check(*t, "paul").fault, ChainFault::None);
  EXPECT_EQ(check(*t, "alice").fault, ChainFault::UntrustedRoot);
}

TEST(ChainVerify, FullDetailListsEveryElement) {
  auto t = trust();
  auto r = check(*t, "carol", Detail::Full);
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_NE(r.elements[0].revocation.find("revoked"), std::string::npos);
  EXPECT_NE(r.elements[1].revocation.find("good"), std::string::npos);
  EXPECT_EQ(r.elements[2].revocation, "not checked (trust anchor)");
  EXPECT_EQ(r.elements[2].subject, "CN=Certgate Demo Root CA, O=Certgate Demo, C=US");
}

TEST(ChainVerify, ExpiredWinsOverMissingCrlEntry) {
  // No CRL at all: the status of every certificate of every chain is unknown.
  TrustOptions o;
  o.revocation = RevocationMode::CacheOnly;
  TrustStore t(load_certificates(pki("root-ca.pem")), {}, {}, o);
  // The setup lacks the CRLs: a certificate with nothing else wrong is of unknown status...
  auto alice = check(t, "alice");
  ASSERT_EQ(alice.fault, ChainFault::RevocationUnknown) << alice.reason;
  // ...and an expired one is reported as expired (validation.md "which error wins").
  auto dave = check(t, "dave");
  EXPECT_EQ(dave.fault, ChainFault::Expired) << dave.reason;
  EXPECT_NE(dave.reason.find("expired"), std::string::npos) << dave.reason;
}

TEST(ChainVerify, NullLeafIsMalformed) {
  auto t = trust();
  EXPECT_EQ(verify_chain(*t, nullptr, nullptr).fault, ChainFault::Malformed);
}

TEST(Load, GarbageIsRejectedWithTheFileName) {
  try {
    load_certificates(pki("garbage.pem"));
    FAIL() << "garbage loaded";
  } catch (const LoadError& e) {
    EXPECT_NE(std::string(e.what()).find("garbage.pem: no certificate found"), std::string::npos);
  }
  EXPECT_THROW(load_crls(pki("alice.pem")), LoadError);
  EXPECT_THROW(load_certificates(pki("no-such-file.pem")), LoadError);
}

TEST(Load, Pkcs12WithWrongPasswordIsRejected) {
  EXPECT_NO_THROW(load_pkcs12(pki("server.pfx"), "demo-pfx"));
  EXPECT_THROW(load_pkcs12(pki("server.pfx"), "wrong"), LoadError);
}

}  // namespace
}  // namespace certgate::pki
