// The many-to-one grammar and the mapping tables, with certificate facts as literals.
#include "auth/decide.hpp"
#include "auth/mapping.hpp"

#include <gtest/gtest.h>

#include <random>

namespace certgate::auth {
namespace {

struct W {
  const char* pattern;
  bool case_sensitive;
  const char* value;
  bool expected;
};

TEST(Wildcard, Grammar) {
  const W rows[] = {
      {"ZeroSSL*", true, "ZeroSSL", true},
      {"ZeroSSL*", true, "ZeroSSL ECC Domain Secure Site CA", true},
      {"ZeroSSL*", true, "zerossl", false},
      {"ZeroSSL*", false, "zerossl inc", true},
      {"*SSL", true, "ZeroSSL", true},
      {"*SSL", true, "ZeroSSL CA", false},
      {"*Secure*", true, "ZeroSSL ECC Domain Secure Site CA", true},
      {"Zero*CA", true, "ZeroSSL CA", true},
      {"Zero*CA", true, "ZeroCA", true},
      {"Zero*CA", true, "ZeroSSL CA 2", false},
      {"a*a", true, "a", false},
      {"a*a", true, "aa", true},
      {"a*b*c", true, "abc", true},
      {"a*b*c", true, "a-c-b", false},
      {"a*b*c", true, "axxbyybzzc", true},
      {"*", true, "", true},
      {"*", true, "anything", true},
      {"**", true, "x", true},
      {"", true, "", true},
      {"", true, "x", false},
      {"Staff", true, "Staff", true},
      {"Staff", true, "Staffing", false},
      {"Staff", true, "staff", false},
      {"Staff", false, "STAFF", true},
      {"a.b", true, "axb", false},        // no metacharacters but *
      {"a?b", true, "axb", false},
      {"[ab]", true, "a", false},
      {"Müller*", true, "Müller GmbH", true},
  };
  for (const auto& r : rows)
    EXPECT_EQ(Wildcard(r.pattern, r.case_sensitive).matches(r.value), r.expected)
        << "'" << r.pattern << "' " << (r.case_sensitive ? "cs" : "ci") << " vs '" << r.value << "'";
}

CertFacts facts(std::vector<NameAttr> subject, std::vector<NameAttr> issuer = {{"CN", "Corp CA"}, {"O", "Corp"}}) {
  CertFacts f;
  f.der_sha256 = std::string(64, 'a');
  f.spki_sha256 = std::string(64, 'b');
  f.serial_hex = "0A1B";
  f.ski_hex = "c0ffee";
  f.issuer_dn = "CN=Corp CA, O=Corp";
  f.subject_dn = "CN=x";
  f.subject = std::move(subject);
  f.issuer = std::move(issuer);
  f.upns = {"Alice@Corp.Example"};
  f.emails = {"alice@example.org"};
  return f;
}

Rule rule(Field f, const char* label, const char* match, bool cs = true) {
  return Rule{f, label, match, Wildcard(match, cs)};
}

ManyToOneMapping mapping(const char* name, const char* user, bool allow, std::vector<Rule> rules, bool enabled = true) {
  return ManyToOneMapping{name, "", user, allow, enabled, std::move(rules), name};
}

TEST(ManyToOne, FirstEnabledMatchInOrderDecides) {
  ManyToOneTable t;
  t.add(mapping("disabled", "nobody", true, {rule(Field::Issuer, "O", "Corp")}, false));
  t.add(mapping("deny contractors", "", false, {rule(Field::Subject, "OU", "Contractors")}));
  t.add(mapping("corp", "corpuser", true, {rule(Field::Issuer, "O", "Corp")}));
  EXPECT_EQ(t.find(facts({{"OU", "Contractors"}}))->name, "deny contractors");
  EXPECT_EQ(t.find(facts({{"OU", "Staff"}}))->name, "corp");
  EXPECT_EQ(t.find(facts({{"OU", "Staff"}}, {{"O", "Other"}})), nullptr);
}

TEST(ManyToOne, AllRulesMustMatchAndNoRulesNeverMatches) {
  ManyToOneTable t;
  t.add(mapping("empty", "u0", true, {}));
  t.add(mapping("both", "u1", true, {rule(Field::Subject, "OU", "Staff"), rule(Field::Subject, "L", "Berlin")}));
  EXPECT_EQ(t.find(facts({{"OU", "Staff"}})), nullptr);
  EXPECT_EQ(t.find(facts({{"OU", "Staff"}, {"L", "Berlin"}}))->user, "u1");
}

TEST(ManyToOne, MultiValuedAttributeMatchesAnyValueAbsentNever) {
  ManyToOneTable t;
  t.add(mapping("staff", "s", true, {rule(Field::Subject, "OU", "Staff")}));
  t.add(mapping("any-e", "e", true, {rule(Field::Subject, "E", "*")}));
  EXPECT_EQ(t.find(facts({{"OU", "Sales"}, {"OU", "Staff"}}))->user, "s");
  EXPECT_EQ(t.find(facts({{"CN", "x"}})), nullptr);  // no E: even "*" does not match
  EXPECT_EQ(t.find(facts({{"E", ""}}))->user, "e");
}

TEST(ManyToOne, CaseInsensitiveExactRuleIsIndexedCorrectly) {
  ManyToOneTable t;
  t.add(mapping("ci", "u", true, {rule(Field::Subject, "OU", "staff", false)}));
  EXPECT_EQ(t.find(facts({{"OU", "STAFF"}}))->user, "u");
  EXPECT_EQ(t.find(facts({{"OU", "Staffing"}})), nullptr);
}

// The index must give exactly what evaluating every mapping in order gives.
TEST(ManyToOne, IndexAgreesWithBruteForce) {
  std::mt19937 rng(7);
  const char* values[] = {"a", "b", "ab", "Staff", "staff", "x*", "*b", "*", "St*", "a*b", "abc"};
  const char* labels[] = {"OU", "CN", "O"};
  ManyToOneTable t;
  std::vector<ManyToOneMapping> all;
  for (int i = 0; i < 300; ++i) {
    std::vector<Rule> rules;
    int n = static_cast<int>(rng() % 3);
    for (int j = 0; j < n; ++j)
      rules.push_back(rule(rng() % 2 ? Field::Subject : Field::Issuer, labels[rng() % 3], values[rng() % 11], rng() % 2));
    auto m = mapping(("m" + std::to_string(i)).c_str(), "u", rng() % 4 != 0, rules, rng() % 5 != 0);
    m.name = "m" + std::to_string(i);
    all.push_back(m);
    t.add(m);
  }
  ManyToOneTable sealed = t;
  sealed.seal();
  for (int k = 0; k < 500; ++k) {
    std::vector<NameAttr> subj, iss;
    for (int j = 0; j < 3; ++j) subj.push_back({labels[rng() % 3], values[rng() % 11]});
    for (int j = 0; j < 2; ++j) iss.push_back({labels[rng() % 3], values[rng() % 11]});
    CertFacts f = facts(subj, iss);
    const ManyToOneMapping* expected = nullptr;
    for (const auto& m : all) {
      if (!m.enabled || m.rules.empty()) continue;
      bool ok = true;
      for (const auto& r : m.rules) ok = ok && rule_matches(r, f);
      if (ok) { expected = &m; break; }
    }
    const ManyToOneMapping* got = t.find(f);
    ASSERT_EQ(got ? got->name : "-", expected ? expected->name : "-");
    const ManyToOneMapping* got_sealed = sealed.find(f);
    ASSERT_EQ(got_sealed ? got_sealed->name : "-", expected ? expected->name : "-");
    std::vector<MappingTrace> trace;
    const ManyToOneMapping* traced = t.find_traced(f, trace);
    ASSERT_EQ(traced ? traced->name : "-", expected ? expected->name : "-");
  }
}

TEST(OneToOne, KeysAndPrecedence) {
  OneToOneIndex idx;
  EXPECT_FALSE(idx.add({"by-email", OneToOneKey::Email, normalize_one_to_one_value(OneToOneKey::Email, "ALICE@example.org"), true, "e"}));
  EXPECT_FALSE(idx.add({"by-cert", OneToOneKey::Certificate, std::string(64, 'a'), true, "c"}));
  EXPECT_EQ(idx.find(facts({}))->user, "by-cert");  // the strongest key wins
  OneToOneIndex weak;
  weak.add({"by-email", OneToOneKey::Email, "alice@example.org", true, "e"});
  EXPECT_EQ(weak.find(facts({}))->user, "by-email");
}

TEST(OneToOne, NormalizesAdministratorValues) {
  EXPECT_EQ(normalize_one_to_one_value(OneToOneKey::Ski, "C0:FF:EE"), "c0ffee");
  EXPECT_EQ(normalize_one_to_one_value(OneToOneKey::IssuerSerial, "0a1b; CN=Corp CA, O=Corp"), "a1b;cn=corp ca, o=corp");
  EXPECT_EQ(one_to_one_values(OneToOneKey::IssuerSerial, facts({})).front(), "a1b;cn=corp ca, o=corp");
  EXPECT_EQ(normalize_one_to_one_value(OneToOneKey::PublicKey, "abc"), "");  // not 64 hex digits
  EXPECT_EQ(normalize_one_to_one_value(OneToOneKey::IssuerSerial, "no-semicolon"), "");
  EXPECT_EQ(normalize_one_to_one_value(OneToOneKey::Upn, "Alice@Corp.Example"), "alice@corp.example");
}

TEST(OneToOne, DuplicateValueIsRefusedDisabledIsIgnored) {
  OneToOneIndex idx;
  EXPECT_FALSE(idx.add({"a", OneToOneKey::Certificate, std::string(64, 'a'), true, "first"}));
  EXPECT_EQ(idx.add({"b", OneToOneKey::Certificate, std::string(64, 'a'), true, "second"}), "first");
  OneToOneIndex off;
  off.add({"a", OneToOneKey::Certificate, std::string(64, 'a'), false, "off"});
  EXPECT_EQ(off.find(facts({})), nullptr);
}

TEST(Labels, WindowsAndOpenSslNames) {
  EXPECT_EQ(canonical_label("ST"), "S");
  EXPECT_EQ(canonical_label("emailAddress"), "E");
  EXPECT_EQ(canonical_label("ou"), "OU");
  EXPECT_EQ(canonical_label("serialNumber"), "SERIALNUMBER");
  EXPECT_EQ(canonical_label("XYZ"), "");
}

}  // namespace
}  // namespace certgate::auth
