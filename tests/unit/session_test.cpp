// The step-up cookie and ticket (src/session/token.hpp): what a forged, altered, expired,
// misdirected or outdated value gets.
#include "session/cert_cache.hpp"
#include "session/token.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <vector>

namespace certgate::session {
namespace {

Key key(char fill) { return Key{std::string(32, fill)}; }

Claims claims() {
  return Claims{"intranet", "CORP\\alice", std::string(32, '\x11'), 1000, "gen-1", ""};
}

TEST(SessionToken, RoundTrip) {
  const std::string v = seal(key('k'), Kind::Cookie, claims());
  Claims out;
  ASSERT_EQ(open(key('k'), Kind::Cookie, v, "intranet", 999, "gen-1", out), Check::Ok);
  EXPECT_EQ(out.user, "CORP\\alice");
  EXPECT_EQ(out.cert_sha256, std::string(32, '\x11'));
  EXPECT_EQ(out.expires, 1000);
  // Cookie-safe characters only.
  EXPECT_EQ(v.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."), std::string::npos);
}

TEST(SessionToken, EveryTamperedCharacterIsRefused) {
  const std::string v = seal(key('k'), Kind::Cookie, claims());
  Claims out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '.') continue;
    std::string t = v;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    const Check c = open(key('k'), Kind::Cookie, t, "intranet", 999, "gen-1", out);
    EXPECT_NE(c, Check::Ok) << "position " << i;
  }
}

TEST(SessionToken, OtherKeyExpiredOtherSiteOtherGeneration) {
  const std::string v = seal(key('k'), Kind::Cookie, claims());
  Claims out;
  EXPECT_EQ(open(key('x'), Kind::Cookie, v, "intranet", 999, "gen-1", out), Check::BadMac);
  EXPECT_EQ(open(key('k'), Kind::Cookie, v, "intranet", 1000, "gen-1", out), Check::Expired);
  EXPECT_EQ(open(key('k'), Kind::Cookie, v, "extranet", 999, "gen-1", out), Check::OtherSite);
  EXPECT_EQ(open(key('k'), Kind::Cookie, v, "intranet", 999, "gen-2", out), Check::OtherGeneration);
}

TEST(SessionToken, ACookieIsNoTicketAndBack) {
  Claims out;
  EXPECT_EQ(open(key('k'), Kind::Ticket, seal(key('k'), Kind::Cookie, claims()), "intranet", 999, "gen-1", out),
            Check::BadMac);
  EXPECT_EQ(open(key('k'), Kind::Cookie, seal(key('k'), Kind::Ticket, claims()), "intranet", 999, "gen-1", out),
            Check::BadMac);
}

TEST(SessionToken, MalformedValues) {
  Claims out;
  for (const std::string& v : std::vector<std::string>{"", ".", "abc", "abc.def", "!!!.???", std::string(5000, 'A') + ".A"})
    EXPECT_EQ(open(key('k'), Kind::Cookie, v, "intranet", 0, "gen-1", out), Check::Malformed) << v;
}

TEST(SessionToken, CookieHeaders) {
  EXPECT_EQ(cookie_value("a=1; certgate_cert=xyz; b=2", "certgate_cert"), "xyz");
  EXPECT_EQ(cookie_value("xcertgate_cert=1", "certgate_cert"), "");
  const std::string set = set_cookie("c", "v", 60, SameSite::Lax);
  EXPECT_NE(set.find("HttpOnly"), std::string::npos);
  EXPECT_NE(set.find("Secure"), std::string::npos);
  EXPECT_NE(set.find("SameSite=Lax"), std::string::npos);
  EXPECT_NE(clear_cookie("c", SameSite::Strict).find("Max-Age=0"), std::string::npos);
}

TEST(SessionToken, ShortKeyFileIsRefused) {
  const auto path = std::filesystem::temp_directory_path() / "certgate_short.key";
  std::ofstream(path) << "short";
  EXPECT_THROW(load_key(path), std::runtime_error);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace certgate::session
