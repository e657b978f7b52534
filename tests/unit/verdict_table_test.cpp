// The verdict catalogue must match behaviour.md §5 exactly: these are the log columns.
#include "auth/verdict.hpp"

#include <gtest/gtest.h>

#include <set>

namespace certgate::auth {
namespace {

struct Expect {
  Verdict v;
  int status, substatus;
  std::uint32_t win32;
};

TEST(VerdictTable, MatchesSpecStatusTable) {
  const Expect rows[] = {
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
      {Verdict::Deny401_2_NoMethod, 401, 2, 5},
      {Verdict::Deny401_1_BadCredentials, 401, 1, 1326},
      {Verdict::Allow, 200, 0, 0},
  };
  for (const auto& r : rows) {
    const auto& row = info(r.v);
    EXPECT_EQ(row.status, r.status) << row.token;
    EXPECT_EQ(row.substatus, r.substatus) << row.token;
    EXPECT_EQ(row.win32, r.win32) << row.token;
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
