// Directory mapping's decisions (auth/directory.hpp), as tables: what is searched for, how
// values are escaped, and what each directory answer means. The searches themselves run
// against a real slapd in tests/e2e/test_directory_e2e.py.
#include "auth/decide.hpp"
#include "auth/directory.hpp"
#include "config/config.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

namespace certgate::auth {
namespace {

CertFacts facts() {
  CertFacts f;
  f.der_sha256 = "aa";
  f.sha1_thumbprint = "346F0D9152664D718C754E288FF9801115DD2939";
  f.serial_hex = "1200000000AC11000000002B";
  f.ski_hex = "ED0F90AB";
  f.subject_dn = "CN=alice, O=Corp";
  f.subject_x500 = "O=Corp,CN=alice";
  f.issuer_x500 = "DC=com,DC=contoso,CN=CONTOSO-DC-CA";
  return f;
}

TEST(LdapEscape, Rfc4515SpecialsAndNonAsciiBecomeHex) {
  const std::pair<std::string, std::string> cases[] = {
      {"alice", "alice"},
      {"*)(uid=*", "\\2a\\29\\28uid=\\2a"},
      {"a\\b", "a\\5cb"},
      {std::string("a\0b", 3), "a\\00b"},
      {"\xc3\xa9", "\\c3\\a9"},
      {"X509:<I>C=US,O=A<SR>01", "X509:<I>C=US,O=A<SR>01"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(ldap_escape(in), out) << in;
}

TEST(Sid, TextAndBinaryRoundTrip) {
  const std::string sid = "S-1-5-21-1004336348-1177238915-682003330-1105";
  const std::string bin = sid_to_binary(sid);
  ASSERT_EQ(bin.size(), 8u + 4 * 5);
  EXPECT_EQ(static_cast<unsigned char>(bin[0]), 1);  // revision
  EXPECT_EQ(static_cast<unsigned char>(bin[1]), 5);  // sub-authorities
  EXPECT_EQ(static_cast<unsigned char>(bin[7]), 5);  // authority 5, big-endian
  EXPECT_EQ(static_cast<unsigned char>(bin[8]), 21);  // first sub-authority, little-endian
  EXPECT_EQ(sid_from_binary(bin), sid);
  for (const char* bad : {"", "S-1", "S-1-5", "X-1-5-21", "S-2-5-21", "S-1-5-abc", "S-1-5-4294967296",
                          "S-1-5-21-", "S-1--5"})
    EXPECT_EQ(sid_to_binary(bad), "") << bad;
  EXPECT_EQ(sid_from_binary("short"), "");
}

TEST(AltSecurityIdentities, WindowsFormsStrongestFirst) {
  auto ids = alt_security_identities(facts());
  ASSERT_EQ(ids.size(), 5u);
  // serial bytes reversed: 12 00 00 00 00 AC 11 00 00 00 00 2B → 2b 00 00 00 00 11 ac ...
  EXPECT_EQ(ids[0].value, "X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SR>2b0000000011ac0000000012");
  EXPECT_EQ(ids[1].value, "X509:<SKI>ed0f90ab");
  EXPECT_EQ(ids[2].value, "X509:<SHA1-PUKEY>346f0d9152664d718c754e288ff9801115dd2939");
  EXPECT_EQ(ids[3].value, "X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<S>O=Corp,CN=alice");
  EXPECT_EQ(ids[4].value, "X509:<S>O=Corp,CN=alice");
  EXPECT_TRUE(is_strong(ids[2].form));
  EXPECT_FALSE(is_strong(ids[3].form));
  CertFacts odd = facts();
  odd.serial_hex = "ABC";  // an odd digit count is a leading zero nibble: 0A BC → bc 0a
  EXPECT_EQ(alt_security_identities(odd)[0].value, "X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SR>bc0a");
}

TEST(DirectoryPlan, StrongOnlyUnlessWeakIsAllowed) {
  CertFacts f = facts();
  f.upns = {"alice@corp"};
  f.emails = {"alice@corp.example"};
  f.sids = {"S-1-5-21-1-2-3-500"};
  DirectoryPolicy p;
  p.account_filter = "(objectClass=user)";
  auto plan = directory_plan(f, p);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_TRUE(plan[0].strong);
  ASSERT_EQ(plan[0].claims.size(), 4u);
  EXPECT_EQ(plan[0].claims[0].form, DirectoryForm::Sid);  // the SID is looked up first
  EXPECT_EQ(plan[0].claims[0].attribute, "objectSid");
  EXPECT_TRUE(plan[0].filter.starts_with("(&(objectClass=user)(|(objectSid=\\01\\05"));
  EXPECT_EQ(plan[0].filter.find("<S>"), std::string::npos);
  EXPECT_EQ(plan[0].filter.find("alice@corp"), std::string::npos);

  p.allow_weak = true;
  plan = directory_plan(f, p);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_FALSE(plan[1].strong);
  EXPECT_NE(plan[1].filter.find("(userPrincipalName=alice@corp)"), std::string::npos);
  EXPECT_NE(plan[1].filter.find("(altSecurityIdentities=X509:<RFC822>alice@corp.example)"), std::string::npos);

  p.sid_attribute = "";  // a directory without SIDs
  p.mapping_attribute = "certMapping";
  plan = directory_plan(f, p);
  EXPECT_EQ(plan[0].claims.size(), 3u);
  EXPECT_EQ(plan[0].claims[0].attribute, "certMapping");
}

DirectoryAnswer found(std::vector<DirectoryEntry> entries, bool strong = true) {
  DirectoryAnswer a;
  a.strong = strong;
  a.filter = "(&(x=y))";
  a.entries = std::move(entries);
  return a;
}

TEST(JudgeDirectory, EveryAnswerHasItsStatus) {
  const CertFacts f = facts();
  const DirectoryNaming corp{"CORP"};
  const std::string sid = sid_to_binary("S-1-5-21-1-2-3-500");
  struct Case {
    const char* name;
    DirectoryAnswer answer;
    CertFacts cert;
    Verdict verdict;
    const char* user;
  };
  CertFacts with_sid = f;
  with_sid.sids = {"S-1-5-21-1-2-3-500"};
  CertFacts other_sid = f;
  other_sid.sids = {"S-1-5-21-1-2-3-999"};
  DirectoryAnswer busy, down, failed;
  busy.status = DirectoryAnswer::Status::Busy;
  down.status = DirectoryAnswer::Status::Unavailable;
  failed.status = DirectoryAnswer::Status::Failed;
  const Case cases[] = {
      {"one account", found({{"uid=a", "alice", {}, {"Staff"}}}), f, Verdict::Allow, "CORP\\alice"},
      {"none", found({}), f, Verdict::Deny403_16_NoMapping, ""},
      {"two", found({{"uid=a", "a", {}, {}}, {"uid=b", "b", {}, {}}}), f,
       Verdict::Deny403_16_DirectoryAmbiguous, ""},
      {"no user name", found({{"uid=a", "", {}, {}}}), f, Verdict::Deny403_16_NoMapping, ""},
      {"weak, same SID", found({{"uid=a", "alice", {sid}, {}}}, false), with_sid, Verdict::Allow, "CORP\\alice"},
      {"weak, other SID", found({{"uid=a", "alice", {sid}, {}}}, false), other_sid,
       Verdict::Deny403_16_NoMapping, ""},
      {"weak, account without SID", found({{"uid=a", "alice", {}, {}}}, false), other_sid, Verdict::Allow,
       "CORP\\alice"},
      {"strong ignores SID", found({{"uid=a", "alice", {sid}, {}}}, true), other_sid, Verdict::Allow,
       "CORP\\alice"},
      {"busy", busy, f, Verdict::Deny503_DirectoryBusy, ""},
      {"down", down, f, Verdict::Deny500_DirectoryUnavailable, ""},
      {"failed", failed, f, Verdict::Deny500_DirectoryFailed, ""},
  };
  for (const auto& c : cases) {
    Outcome o = judge_directory(c.cert, c.answer, corp);
    EXPECT_EQ(o.verdict, c.verdict) << c.name << ": " << o.reason;
    EXPECT_EQ(o.user, c.user) << c.name;
  }
  EXPECT_EQ(judge_directory(f, found({{"uid=a", "alice", {}, {"Staff"}}}), corp).groups,
            std::vector<std::string>{"Staff"});
  EXPECT_EQ(judge_directory(f, found({{"uid=a", "alice", {}, {}}}), {}).user, "alice");
  EXPECT_EQ(info(Verdict::Deny500_DirectoryUnavailable).win32, 8250u);
  EXPECT_EQ(info(Verdict::Deny403_16_DirectoryAmbiguous).win32, 1326u);
}

TEST(JudgeDirectory, DirectoryGroupsFeedAuthorization) {
  SiteAuth site;
  site.mapping_enabled = true;
  site.directory_enabled = true;
  LocationPolicy policy;
  policy.ssl_flags.bits = kSslRequireCert;
  policy.site = &site;
  policy.access.allow_groups = {"webadmins"};
  ChainReport ok;
  CertFacts f = facts();
  Outcome mapped = judge_directory(f, found({{"uid=a", "alice", {}, {"WebAdmins"}}}), {});
  RequestEvidence ev{true, 256, true, true, &ok, &f, &mapped};
  EXPECT_EQ(decide(policy, ev).verdict, Verdict::Allow);
  Outcome other = judge_directory(f, found({{"uid=b", "bob", {}, {"Staff"}}}), {});
  ev.mapped = &other;
  EXPECT_EQ(decide(policy, ev).verdict, Verdict::Deny401_3_AccessDenied);
  EXPECT_TRUE(defers_to_directory(site, map_certificate(site, f)));
}

}  // namespace
}  // namespace certgate::auth

namespace certgate::config {
namespace {

std::string directory_error(const std::string& directory_keys, const std::string& extra = "") {
  test::TempDir dir;
  dir.write("pw.txt", "s3cret\n");
  auto file = dir.write("c.toml", "[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                                  "certificate = \"server.pem\"\n" + extra +
                                  "[sites.directory_mapping]\n" + directory_keys);
  try {
    Config c = load(file);
    if (!c.sites[0].directory.bind_password.empty() && c.sites[0].directory.bind_password != "s3cret")
      return "password not read";
  } catch (const ConfigError& e) {
    std::string msg = e.what();
    return msg.substr(msg.find("c.toml"));
  }
  return "";
}

TEST(DirectoryConfig, ValidSettingsLoad) {
  EXPECT_EQ(directory_error("url = \"ldap://dc1:389\"\nbase_dn = \"DC=corp\"\n"), "");
  EXPECT_EQ(directory_error("url = [\"ldaps://dc1\", \"ldap://dc2\"]\nbase_dn = \"DC=corp\"\n"
                            "bind_dn = \"CN=svc\"\nbind_password_file = \"pw.txt\"\n"),
            "");
}

TEST(DirectoryConfig, MistakesAreNamed) {
  EXPECT_NE(directory_error("base_dn = \"DC=corp\"\n").find("url: missing"), std::string::npos);
  EXPECT_NE(directory_error("url = \"http://dc1\"\nbase_dn = \"DC=corp\"\n").find("expected ldap://"),
            std::string::npos);
  EXPECT_NE(directory_error("url = \"ldap://dc1\"\n").find("base_dn: missing"), std::string::npos);
  EXPECT_NE(directory_error("url = \"ldap://dc1\"\nbase_dn = \"DC=corp\"\nbind_dn = \"CN=svc\"\n")
                .find("unauthenticated bind"),
            std::string::npos);
  EXPECT_NE(directory_error("url = \"ldap://dc1\"\nbase_dn = \"DC=corp\"\ngroup_filter = \"(member=x)\"\n")
                .find("must contain {dn}"),
            std::string::npos);
  EXPECT_NE(directory_error("url = \"ldap://dc1\"\nbase_dn = \"DC=corp\"\naccount_filter = \"objectClass=user\"\n")
                .find("in parentheses"),
            std::string::npos);
  EXPECT_NE(directory_error("url = \"ldap://dc1\"\nbase_dn = \"DC=corp\"\nbind_pasword = \"x\"\n")
                .find("bind_pasword: unknown key"),
            std::string::npos);
}

TEST(DirectoryConfig, CannotShareASiteWithManyToOne) {
  const std::string many = "[sites.mapping]\n[[sites.mapping.many_to_one]]\nname = \"m\"\nuser = \"u\"\n"
                           "[[sites.mapping.many_to_one.rules]]\nfield = \"Subject\"\nsubfield = \"CN\"\n"
                           "match = \"*\"\n";
  EXPECT_NE(directory_error("url = \"ldap://dc1\"\nbase_dn = \"DC=corp\"\n", many).find("IIS allows one or the other"),
            std::string::npos);
  EXPECT_EQ(directory_error("url = \"ldap://dc1\"\nbase_dn = \"DC=corp\"\n",
                            "[sites.mapping]\nmany_to_one_enabled = false\n" + many.substr(many.find('\n') + 1)),
            "");
}

}  // namespace
}  // namespace certgate::config
