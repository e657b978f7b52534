// The answer catalogue must match behaviour.md §5 exactly, and the choices of
// docs/status-codes.md where it is silent: these are the log columns.
#include "auth/verdict.hpp"
#include "auth/verdict_advice.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <tuple>

namespace certgate::auth {
namespace {

struct Expect {
  Verdict v;
  int status, substatus;
  std::uint32_t win32;
};

// Every key of the catalogue with the log columns it writes: behaviour.md §5 where it speaks,
// the choices of docs/status-codes.md elsewhere. A key missing here fails EveryKeyIsListed.
const Expect kRows[] = {
    {Verdict::Allow, 200, 0, 0},
    {Verdict::Deny403_4_SslRequired, 403, 4, 5},
    {Verdict::Deny403_5_Ssl128Required, 403, 5, 5},
    {Verdict::Deny403_7_NoCertificate, 403, 7, 5},
    {Verdict::Deny403_12_MapperDenied, 403, 12, 5},
    {Verdict::Deny403_13_Revoked, 403, 13, 2148081680u},
    {Verdict::Deny403_13_RevocationUnknown, 403, 13, 2148081683u},
    {Verdict::Deny403_16_UntrustedRoot, 403, 16, 2148204809u},
    {Verdict::Deny403_16_WrongUsage, 403, 16, 2148204816u},
    {Verdict::Deny403_16_Invalid, 403, 16, 2148098052u},
    {Verdict::Deny403_16_NoMapping, 403, 16, 1326},
    {Verdict::Deny403_17_Expired, 403, 17, 2148204801u},
    {Verdict::Deny401_1_BadCredentials, 401, 1, 1326},
    {Verdict::Deny401_2_NoMethod, 401, 2, 5},
    {Verdict::Deny401_3_AccessDenied, 401, 3, 5},
    {Verdict::Deny403_16_DirectoryAmbiguous, 403, 16, 1326},
    {Verdict::Deny500_DirectoryUnavailable, 500, 0, 8250},
    {Verdict::Deny500_DirectoryFailed, 500, 0, 8224},
    {Verdict::Deny503_DirectoryBusy, 503, 0, 0},
    {Verdict::Allow200_RevocationUnknown, 200, 0, 2148081683u},
    {Verdict::Http400_BadRequest, 400, 0, 0},
    {Verdict::Http403_14_ListingDenied, 403, 14, 0},
    {Verdict::Http404_NotFound, 404, 0, 2},
    {Verdict::Http404_8_HiddenSegment, 404, 8, 0},
    {Verdict::Http405_MethodNotAllowed, 405, 0, 1},
    {Verdict::Http408_RequestTimeout, 408, 0, 0},
    {Verdict::Http413_BodyTooLarge, 413, 0, 0},
    {Verdict::Http414_UrlTooLong, 414, 0, 0},
    {Verdict::Http416_RangeNotSatisfiable, 416, 0, 0},
    {Verdict::Http421_MisdirectedRequest, 421, 0, 0},
    {Verdict::Http431_HeadersTooLarge, 431, 0, 0},
    {Verdict::Http500_FileUnreadable, 500, 0, 0},
    {Verdict::Http501_TransferCoding, 501, 0, 0},
    {Verdict::Http502_3_BackendRefused, 502, 3, 12029},
    {Verdict::Http502_3_BackendConnectTimeout, 502, 3, 12002},
    {Verdict::Http502_3_BackendInvalidAnswer, 502, 3, 12152},
    {Verdict::Http503_PasswordChecksBusy, 503, 0, 0},
    {Verdict::Http504_BackendTimeout, 504, 0, 12002},
    {Verdict::Token401_1_NonceRefused, 401, 1, 1326},
    {Verdict::Token401_1_BadSignature, 401, 1, 1326},
    {Verdict::Http503_StateUnavailable, 503, 0, 0},
    {Verdict::Http303_StepUp, 303, 0, 0},
    {Verdict::Http401_StepUp, 401, 0, 0},
};

TEST(VerdictTable, EveryKeyWritesTheChosenLogColumns) {
  for (const auto& r : kRows) {
    const auto& row = info(r.v);
    EXPECT_EQ(row.verdict, r.v) << row.token;
    EXPECT_EQ(row.status, r.status) << row.token;
    EXPECT_EQ(row.substatus, r.substatus) << row.token;
    EXPECT_EQ(row.win32, r.win32) << row.token;
  }
}

TEST(VerdictTable, EveryKeyIsListed) {
  std::set<Verdict> listed;
  for (const auto& r : kRows) EXPECT_TRUE(listed.insert(r.v).second) << info(r.v).token;
  for (int i = 0; i < static_cast<int>(Verdict::Count_); ++i)
    EXPECT_TRUE(listed.count(static_cast<Verdict>(i))) << info(static_cast<Verdict>(i)).token;
}

// The title belongs to status.substatus.win32: as on IIS's pages, one status.substatus has one
// title, save 403.16, whose valid-but-unmapped rows (1326) are titled as what they are (issue
// 20). Rows of one status.substatus differ in win32 unless they mean the same (one key per place
// that decides, e.g. "no mapping" and "several directory accounts").
TEST(VerdictTable, OneStatusSubstatusWin32HasOneTitle) {
  std::map<std::tuple<int, int, std::uint32_t>, std::string_view> titles;
  std::map<std::pair<int, int>, std::set<std::string_view>> per_code;
  for (int i = 0; i < static_cast<int>(Verdict::Count_); ++i) {
    const auto& row = info(static_cast<Verdict>(i));
    if (row.status >= 400) per_code[{row.status, row.substatus}].insert(row.title);
    auto [it, fresh] = titles.emplace(std::tuple{row.status, row.substatus, row.win32}, row.title);
    EXPECT_TRUE(fresh || it->second == row.title)
        << row.token << ": '" << row.title << "' vs '" << it->second << "'";
  }
  for (const auto& [code, set] : per_code)
    EXPECT_EQ(set.size(), (code == std::pair{403, 16} ? 2u : 1u)) << code.first << "." << code.second;
  EXPECT_EQ(info(Verdict::Deny403_16_NoMapping).title, "Client certificate is not mapped to an account");
}

// Every refusal's page says what happened and what to try; every win32 code it shows has a name.
TEST(VerdictTable, EveryRefusalHasWordsForThePerson) {
  for (int i = 0; i < static_cast<int>(Verdict::Count_); ++i) {
    const auto& row = info(static_cast<Verdict>(i));
    if (row.status < 400) continue;
    const Advice& a = advice_for(row.verdict);
    EXPECT_FALSE(a.sentence.empty()) << row.token;
    EXPECT_FALSE(a.things_to_try.empty()) << row.token;
    if (row.win32 != 0) EXPECT_FALSE(win32_name(row.win32).empty()) << row.token;
  }
  EXPECT_NE(advice_for(Verdict::Deny403_7_NoCertificate).sentence, advice_for(Verdict::Deny403_16_NoMapping).sentence);
}

TEST(VerdictTable, OnlyAllowedOutcomesAreServed) {
  for (int i = 0; i < static_cast<int>(Verdict::Count_); ++i) {
    Outcome o;
    o.verdict = static_cast<Verdict>(i);
    EXPECT_EQ(o.allowed(), o.verdict == Verdict::Allow || o.verdict == Verdict::Allow200_RevocationUnknown)
        << o.row().token;
  }
}

TEST(VerdictTable, TokensAreUniqueAndNamedByCode) {
  std::set<std::string_view> tokens;
  for (int i = 0; i < static_cast<int>(Verdict::Count_); ++i) {
    const auto& row = info(static_cast<Verdict>(i));
    EXPECT_TRUE(tokens.insert(row.token).second) << row.token;
    std::string prefix = std::to_string(row.status) + "_" + std::to_string(row.substatus) + "_";
    EXPECT_EQ(row.token.substr(0, prefix.size()), prefix) << row.token;
    EXPECT_FALSE(row.title.empty());
  }
}

}  // namespace
}  // namespace certgate::auth
