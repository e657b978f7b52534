// Authentication and authorization in the core (behaviour.md §1 steps 7-8, §3, §4).
#include "auth/decide.hpp"

#include <gtest/gtest.h>

namespace certgate::auth {
namespace {

constexpr SslFlags kAccept{kSsl | kSslNegotiateCert};
constexpr SslFlags kRequire{kSsl | kSslNegotiateCert | kSslRequireCert};
const ChainReport kGood{ChainFault::None, "", {}};

CertFacts cert(const char* ou, const char* cn = "alice") {
  CertFacts f;
  f.der_sha256 = std::string(64, cn[0] == 'a' ? 'a' : 'c');
  f.subject_dn = std::string("CN=") + cn;
  f.subject = {{"CN", cn}, {"OU", ou}};
  f.issuer = {{"O", "Corp"}};
  return f;
}

SiteAuth site() {
  SiteAuth s;
  s.mapping_enabled = true;
  s.one_to_one.add({"alice-account", OneToOneKey::Certificate, std::string(64, 'a'), true, "o2o[0]"});
  s.many_to_one.add({"deny contractors", "", "", false, true,
                     {{Field::Subject, "OU", "Contractors", Wildcard("Contractors", true)}}, "m2o[0]"});
  s.many_to_one.add({"staff", "", "staff-account", true, true,
                     {{Field::Subject, "OU", "Staff", Wildcard("Staff", true)}}, "m2o[1]"});
  s.basic_enabled = true;
  s.groups["staff-account"] = {"Readers"};
  s.groups["alice-account"] = {"Admins"};
  return s;
}

RequestEvidence with_cert(const CertFacts& f) { return {true, 256, true, true, &kGood, &f}; }
RequestEvidence no_cert() { return {true, 256, true, false, nullptr, nullptr}; }
RequestEvidence basic(PasswordCheck check, const char* user, RequestEvidence ev = no_cert()) {
  ev.basic = check;
  ev.basic_user = user;
  return ev;
}

TEST(Authenticate, OneToOneBeatsManyToOne) {
  SiteAuth s = site();
  CertFacts alice = cert("Staff", "alice");
  Outcome o = decide({kRequire, true, false, {}, &s}, with_cert(alice));
  EXPECT_TRUE(o.allowed());
  EXPECT_EQ(o.user, "alice-account");
  EXPECT_EQ(o.auth_method, "Certificate");
}

TEST(Authenticate, ManyToOneAllowDenyAndNoMatch) {
  SiteAuth s = site();
  CertFacts bob = cert("Staff", "bob"), zoe = cert("Contractors", "zoe"), x = cert("Sales", "xavier");
  LocationPolicy p{kRequire, true, false, {}, &s};
  EXPECT_EQ(decide(p, with_cert(bob)).user, "staff-account");
  Outcome denied = decide(p, with_cert(zoe));
  EXPECT_EQ(denied.verdict, Verdict::Deny403_12_MapperDenied);
  EXPECT_NE(denied.reason.find("deny contractors"), std::string::npos);
  EXPECT_EQ(decide(p, with_cert(x)).verdict, Verdict::Deny403_16_NoMapping);
}

TEST(Authenticate, SwitchesTurnMappingKindsOff) {
  SiteAuth s = site();
  s.one_to_one_enabled = false;
  CertFacts alice = cert("Engineering", "alice");
  EXPECT_EQ(decide({kRequire, true, false, {}, &s}, with_cert(alice)).verdict, Verdict::Deny403_16_NoMapping);
  s.mapping_enabled = false;  // mapping off: a valid certificate only proves trust; anonymous runs
  Outcome o = decide({kRequire, true, false, {}, &s}, with_cert(alice));
  EXPECT_TRUE(o.allowed());
  EXPECT_EQ(o.user, "");
}

TEST(Authenticate, AcceptModeFallsBackToBasicThenAnonymous) {
  SiteAuth s = site();
  LocationPolicy p{kAccept, true, false, {}, &s};
  EXPECT_EQ(decide(p, basic(PasswordCheck::Valid, "carl")).user, "carl");
  Outcome wrong = decide(p, basic(PasswordCheck::Invalid, "carl"));
  EXPECT_EQ(wrong.verdict, Verdict::Deny401_1_BadCredentials);
  EXPECT_TRUE(wrong.challenge);
  EXPECT_TRUE(decide(p, no_cert()).allowed());  // anonymous
  LocationPolicy closed{kAccept, false, false, {}, &s};
  Outcome none = decide(closed, no_cert());
  EXPECT_EQ(none.verdict, Verdict::Deny401_2_NoMethod);
  EXPECT_TRUE(none.challenge);
}

TEST(Authenticate, TwoFactorNeedsTheMappedUsersPassword) {
  SiteAuth s = site();
  CertFacts alice = cert("Engineering", "alice");
  LocationPolicy p{kRequire, true, true, {}, &s};
  EXPECT_EQ(decide(p, with_cert(alice)).verdict, Verdict::Deny401_2_NoMethod);
  EXPECT_EQ(decide(p, basic(PasswordCheck::Invalid, "alice-account", with_cert(alice))).verdict,
            Verdict::Deny401_1_BadCredentials);
  EXPECT_EQ(decide(p, basic(PasswordCheck::Valid, "someone-else", with_cert(alice))).verdict,
            Verdict::Deny401_1_BadCredentials);
  Outcome ok = decide(p, basic(PasswordCheck::Valid, "ALICE-account", with_cert(alice)));
  EXPECT_TRUE(ok.allowed());
  EXPECT_EQ(ok.auth_method, "Certificate+Basic");
  LocationPolicy accept_2fa{kAccept, true, true, {}, &s};
  EXPECT_EQ(decide(accept_2fa, basic(PasswordCheck::Valid, "alice-account")).verdict,
            Verdict::Deny403_7_NoCertificate);
}

TEST(Authorize, AllowAndDenyUsersAndGroups) {
  SiteAuth s = site();
  CertFacts alice = cert("Engineering", "alice"), bob = cert("Staff", "bob");
  AccessRules admins{{}, {}, {"admins"}, {}};
  LocationPolicy p{kRequire, true, false, admins, &s};
  EXPECT_TRUE(decide(p, with_cert(alice)).allowed());
  Outcome refused = decide(p, with_cert(bob));
  EXPECT_EQ(refused.verdict, Verdict::Deny403_0_Forbidden);
  EXPECT_EQ(refused.user, "staff-account");  // the log still names who was refused
  AccessRules deny_alice{{"*"}, {"Alice-Account"}, {}, {}};
  EXPECT_EQ(decide({kRequire, true, false, deny_alice, &s}, with_cert(alice)).verdict, Verdict::Deny403_0_Forbidden);
  EXPECT_TRUE(decide({kRequire, true, false, deny_alice, &s}, with_cert(bob)).allowed());
}

TEST(Authorize, AnonymousRefusedIs401_2) {
  SiteAuth s = site();
  AccessRules everyone{{"*"}, {}, {}, {}};  // IIS: "*" includes the anonymous user
  EXPECT_TRUE(decide({kAccept, true, false, everyone, &s}, no_cert()).allowed());
  AccessRules named{{"staff-account"}, {}, {}, {}};
  Outcome o = decide({kAccept, true, false, named, &s}, no_cert());
  EXPECT_EQ(o.verdict, Verdict::Deny401_2_NoMethod);
  AccessRules deny_anon{{}, {"?"}, {}, {}};
  EXPECT_EQ(decide({kAccept, true, false, deny_anon, &s}, no_cert()).verdict, Verdict::Deny401_2_NoMethod);
}

}  // namespace
}  // namespace certgate::auth
