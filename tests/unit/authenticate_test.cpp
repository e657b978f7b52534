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

// Issue 14 item 7, as IIS logs it: a logged-on user refused by a rule is 401.3 (win32 5, ACL on
// resource) whatever the method that logged them on; a request that offered no credentials this
// location could log on with is anonymous and gets 401.2.
struct AuthorizeRow {
  const char* name;
  LocationPolicy policy;
  RequestEvidence evidence;
  int status, substatus;
  std::uint32_t win32;
  const char* user;  // cs-username: who was refused, "" for the anonymous user
  bool challenge;
};

void PrintTo(const AuthorizeRow& r, std::ostream* os) { *os << r.name; }

class Authorize : public ::testing::TestWithParam<AuthorizeRow> {};

TEST_P(Authorize, RefusalIsLoggedAsIisDoes) {
  const AuthorizeRow& row = GetParam();
  Outcome o = decide(row.policy, row.evidence);
  const auto& answer = o.row();
  EXPECT_EQ(answer.status, row.status) << o.reason;
  EXPECT_EQ(answer.substatus, row.substatus) << o.reason;
  EXPECT_EQ(answer.win32, row.win32) << o.reason;
  EXPECT_EQ(o.user, row.user);
  EXPECT_EQ(o.challenge, row.challenge);
  if (row.status == 401 && row.substatus == 3)
    EXPECT_NE(o.reason.find(std::string("user '") + row.user + "' is"), std::string::npos) << o.reason;
}

const SiteAuth kSite = site();
const SiteAuth kSiteNoMapping = [] {
  SiteAuth s = site();
  s.mapping_enabled = false;
  return s;
}();
const CertFacts kAlice = cert("Engineering", "alice"), kBob = cert("Staff", "bob");
const AccessRules kAdmins{{}, {}, {"admins"}, {}};
const AccessRules kDenyAlice{{"*"}, {"Alice-Account"}, {}, {}};
const AccessRules kEveryone{{"*"}, {}, {}, {}};
const AccessRules kStaffOnly{{"staff-account"}, {}, {}, {}};
const AccessRules kDenyAnonymous{{}, {"?"}, {}, {}};

INSTANTIATE_TEST_SUITE_P(
    Rules, Authorize,
    ::testing::Values(
        AuthorizeRow{"mapped_user_in_allowed_group", {kRequire, true, false, kAdmins, &kSite},
                     with_cert(kAlice), 200, 0, 0, "alice-account", false},
        AuthorizeRow{"mapped_user_not_in_allowed_group", {kRequire, true, false, kAdmins, &kSite},
                     with_cert(kBob), 401, 3, 5, "staff-account", false},
        AuthorizeRow{"mapped_user_denied_by_name_case_insensitively",
                     {kRequire, true, false, kDenyAlice, &kSite}, with_cert(kAlice), 401, 3, 5,
                     "alice-account", false},
        AuthorizeRow{"other_mapped_user_passes_the_deny", {kRequire, true, false, kDenyAlice, &kSite},
                     with_cert(kBob), 200, 0, 0, "staff-account", false},
        // The Basic user may answer the challenge with another account.
        AuthorizeRow{"basic_user_not_allowed", {kAccept, true, false, kAdmins, &kSite},
                     basic(PasswordCheck::Valid, "staff-account"), 401, 3, 5, "staff-account", true},
        AuthorizeRow{"anonymous_everyone_includes_anonymous", {kAccept, true, false, kEveryone, &kSite},
                     no_cert(), 200, 0, 0, "", false},
        AuthorizeRow{"anonymous_not_named", {kAccept, true, false, kStaffOnly, &kSite}, no_cert(),
                     401, 2, 5, "", true},
        AuthorizeRow{"anonymous_denied_by_question_mark", {kAccept, true, false, kDenyAnonymous, &kSite},
                     no_cert(), 401, 2, 5, "", true},
        // A certificate the site does not map logs nobody on: still the anonymous user.
        AuthorizeRow{"unmapped_certificate_is_anonymous",
                     {kAccept, true, false, kDenyAnonymous, &kSiteNoMapping}, with_cert(kAlice), 401, 2,
                     5, "", true},
        // Wrong credentials never reach the rules: 401.1 from authentication.
        AuthorizeRow{"wrong_password_is_401_1_before_the_rules",
                     {kAccept, true, false, kDenyAnonymous, &kSite},
                     basic(PasswordCheck::Invalid, "staff-account"), 401, 1, 1326, "", true}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace certgate::auth
