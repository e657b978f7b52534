// The decision vouches for a certificate (Outcome::certificate) only when this request's location
// validated it and (where the site maps) mapped it: the one case the proxy may forward it (issue 13 item 1).
#include "auth/decide.hpp"

#include <gtest/gtest.h>

namespace certgate::auth {
namespace {

constexpr SslFlags kSslOnly{kSsl};
constexpr SslFlags kAccept{kSsl | kSslNegotiateCert};
constexpr SslFlags kRequire{kSsl | kSslNegotiateCert | kSslRequireCert};
const ChainReport kGood{ChainFault::None, "", {}};

TEST(ForwardedCertificate, OnlyAValidatedAndMappedCertificateIsVouchedFor) {
  CertFacts alice;
  alice.der_sha256 = std::string(64, 'a');
  alice.subject = {{"CN", "alice"}};
  SiteAuth mapped;
  mapped.mapping_enabled = true;
  mapped.basic_enabled = true;
  mapped.one_to_one.add({"alice-account", OneToOneKey::Certificate, std::string(64, 'a'), true, "o2o[0]"});
  SiteAuth unmapped;
  unmapped.basic_enabled = true;

  RequestEvidence presented{true, 256, true, true, &kGood, &alice};
  RequestEvidence unvalidated{true, 256, true, true, nullptr, nullptr};  // the location never validated it
  RequestEvidence basic_too = presented;
  basic_too.basic = PasswordCheck::Valid;
  basic_too.basic_user = "alice-account";
  RequestEvidence basic_only = unvalidated;
  basic_only.basic = PasswordCheck::Valid;
  basic_only.basic_user = "bob";

  const struct {
    const char* name;
    LocationPolicy policy;
    RequestEvidence ev;
    bool allowed, certificate;
  } cases[] = {
      {"mapped, required", {kRequire, true, false, {}, &mapped}, presented, true, true},
      {"mapped, accepted", {kAccept, true, false, {}, &mapped}, presented, true, true},
      {"two-factor", {kRequire, true, true, {}, &mapped}, basic_too, true, true},
      {"location does not negotiate", {kSslOnly, true, false, {}, &mapped}, unvalidated, true, false},
      {"location does not negotiate, Basic user", {kSslOnly, true, false, {}, &mapped}, basic_only, true, false},
      // Without mapping the request is anonymous, but the certificate was validated here: the
      // backend may do its own mapping (IIS: Request.ClientCertificate).
      {"site without mapping", {kAccept, true, false, {}, &unmapped}, presented, true, true},
      {"site without mapping, location does not negotiate", {kSslOnly, true, false, {}, &unmapped}, unvalidated, true, false},
  };
  for (const auto& c : cases) {
    Outcome o = decide(c.policy, c.ev);
    EXPECT_EQ(o.allowed(), c.allowed) << c.name << ": " << o.reason;
    EXPECT_EQ(o.certificate, c.certificate) << c.name;
  }
}

}  // namespace
}  // namespace certgate::auth
