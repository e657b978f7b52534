// Table tests of the pure decision core (spec: behaviour.md §1 and §5).
#include "auth/decide.hpp"

#include <gtest/gtest.h>

namespace certgate::auth {
namespace {

constexpr SslFlags kNone{0};
constexpr SslFlags kSslOnly{kSsl};
constexpr SslFlags kAccept{kSsl | kSslNegotiateCert};
constexpr SslFlags kRequire{kSsl | kSslNegotiateCert | kSslRequireCert};

ChainReport report(ChainFault f) { return ChainReport{f, "reason", {}}; }
const ChainReport kGood = report(ChainFault::None);
const ChainReport kExpired = report(ChainFault::Expired);
const ChainReport kNotYet = report(ChainFault::NotYetValid);
const ChainReport kRevoked = report(ChainFault::Revoked);
const ChainReport kUnknown = report(ChainFault::RevocationUnknown);
const ChainReport kUntrusted = report(ChainFault::UntrustedRoot);
const ChainReport kUsage = report(ChainFault::WrongUsage);
const ChainReport kBadSig = report(ChainFault::BadSignature);
const ChainReport kMalformed = report(ChainFault::Malformed);
const ChainReport kConstraint = report(ChainFault::Constraint);
// What revocation::validate() hands on when soft_fail accepts an unknown status.
const ChainReport kSoftFailed = [] {
  ChainReport r = report(ChainFault::None);
  r.revocation_unknown_accepted = true;
  return r;
}();

struct Row {
  const char* name;
  LocationPolicy policy;
  RequestEvidence ev;
  Verdict expected;
};

RequestEvidence tls_no_cert() { return {true, 256, true, false, nullptr}; }
RequestEvidence tls_cert(const ChainReport& r) { return {true, 256, true, true, &r}; }
RequestEvidence plain_http() { return {false, 0, false, false, nullptr}; }

const Row kRows[] = {
    {"plain_http_on_ssl_location_gives_403_4", {kSslOnly, true}, plain_http(), Verdict::Deny403_4_SslRequired},
    {"plain_http_on_ssl128_location_gives_403_4", {SslFlags{kSsl128}, true}, plain_http(), Verdict::Deny403_4_SslRequired},
    {"plain_http_without_ssl_flag_is_served", {kNone, true}, plain_http(), Verdict::Allow},
    {"weak_cipher_on_ssl128_gives_403_5", {SslFlags{kSsl | kSsl128}, true}, {true, 56, false, false, nullptr}, Verdict::Deny403_5_Ssl128Required},
    {"strong_cipher_on_ssl128_is_served", {SslFlags{kSsl | kSsl128}, true}, {true, 128, false, false, nullptr}, Verdict::Allow},
    {"no_certificate_on_require_gives_403_7", {kRequire, true}, tls_no_cert(), Verdict::Deny403_7_NoCertificate},
    {"require_over_plain_http_gives_403_4_first", {kRequire, true}, plain_http(), Verdict::Deny403_4_SslRequired},
    {"valid_certificate_on_require_is_served", {kRequire, true}, tls_cert(kGood), Verdict::Allow},
    {"expired_leaf_gives_403_17", {kRequire, true}, tls_cert(kExpired), Verdict::Deny403_17_Expired},
    {"not_yet_valid_gives_403_17", {kRequire, true}, tls_cert(kNotYet), Verdict::Deny403_17_Expired},
    {"revoked_gives_403_13", {kRequire, true}, tls_cert(kRevoked), Verdict::Deny403_13_Revoked},
    {"revocation_unknown_gives_403_13", {kRequire, true}, tls_cert(kUnknown), Verdict::Deny403_13_RevocationUnknown},
    {"untrusted_issuer_gives_403_16", {kRequire, true}, tls_cert(kUntrusted), Verdict::Deny403_16_UntrustedRoot},
    {"wrong_usage_gives_403_16", {kRequire, true}, tls_cert(kUsage), Verdict::Deny403_16_WrongUsage},
    {"bad_signature_gives_403_16", {kRequire, true}, tls_cert(kBadSig), Verdict::Deny403_16_Invalid},
    {"malformed_gives_403_16", {kRequire, true}, tls_cert(kMalformed), Verdict::Deny403_16_Invalid},
    {"constraint_violation_gives_403_16", {kRequire, true}, tls_cert(kConstraint), Verdict::Deny403_16_Invalid},
    {"accept_mode_without_certificate_is_anonymous", {kAccept, true}, tls_no_cert(), Verdict::Allow},
    {"accept_mode_with_bad_certificate_gives_403_16", {kAccept, true}, tls_cert(kUntrusted), Verdict::Deny403_16_UntrustedRoot},
    {"accept_mode_bad_certificate_does_not_fall_back_to_anonymous", {kAccept, true}, tls_cert(kExpired), Verdict::Deny403_17_Expired},
    {"ssl_only_location_ignores_a_bad_certificate", {kSslOnly, true}, tls_cert(kUntrusted), Verdict::Allow},
    {"anonymous_off_without_other_method_gives_401_2", {kAccept, false}, tls_no_cert(), Verdict::Deny401_2_NoMethod},
    {"soft_failed_certificate_is_served_and_logged_so", {kRequire, true}, tls_cert(kSoftFailed), Verdict::Allow200_RevocationUnknown},
    {"soft_failed_certificate_ignored_by_ssl_only_location", {kSslOnly, true}, tls_cert(kSoftFailed), Verdict::Allow},
    {"unvalidated_presented_certificate_fails_closed", {kRequire, true}, {true, 256, true, true, nullptr}, Verdict::Deny403_16_Invalid},
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

class DecideTable : public ::testing::TestWithParam<Row> {};

TEST_P(DecideTable, GivesExpectedVerdict) {
  const Row& row = GetParam();
  Outcome o = decide(row.policy, row.ev);
  EXPECT_EQ(o.verdict, row.expected) << row.name << ": got " << o.row().token << " (" << o.reason << ")";
}

INSTANTIATE_TEST_SUITE_P(Rows, DecideTable, ::testing::ValuesIn(kRows),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Decide, ChainReasonIsCarriedToTheOutcome) {
  ChainReport r{ChainFault::Expired, "certificate 'CN=x' expired 2026-03-01 00:00:00 UTC", {}};
  Outcome o = decide({kRequire, true}, tls_cert(r));
  EXPECT_EQ(o.reason, r.reason);
}

TEST(SslFlags, ParsesIisWordsAndRejectsOthers) {
  EXPECT_EQ(parse_ssl_flag("SslRequireCert")->bits, kSslRequireCert);
  EXPECT_EQ(parse_ssl_flag("None")->bits, 0);
  EXPECT_FALSE(parse_ssl_flag("sslrequirecert"));
  EXPECT_FALSE(parse_ssl_flag("Ssl129"));
  EXPECT_EQ(to_string(kRequire), "Ssl,SslNegotiateCert,SslRequireCert");
  EXPECT_TRUE(SslFlags{kSslRequireCert}.negotiates());
}

}  // namespace
}  // namespace certgate::auth
