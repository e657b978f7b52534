// [server] user and admin_allow (issue 18 items 6 and 10), address blocks, and the answer
// counters behind the admin status page.
#include "net/cidr.hpp"
#include "config/config.hpp"
#include "http/answer_stats.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

namespace certgate {
namespace {

TEST(ServiceConfig, UserAndAdminAllowDefaultsAndErrors) {
  test::TempDir dir;
  const std::string site = "[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                           "certificate = \"server.pem\"\n";
  const auto ok = config::load(dir.write("a.toml", "[server]\n" + site)).server;
  EXPECT_EQ(ok.user, "");
  EXPECT_EQ(ok.admin_allow, (std::vector<std::string>{"127.0.0.0/8", "::1/128"}));
  const auto set = config::load(dir.write("b.toml", "[server]\nuser = \"certgate\"\nadmin_allow = [\"10.1.0.0/16\"]\n" + site)).server;
  EXPECT_EQ(set.user, "certgate");
  EXPECT_EQ(set.admin_allow, (std::vector<std::string>{"10.1.0.0/16"}));
  try {
    config::load(dir.write("c.toml", "[server]\nuser = \"root; rm\"\n"));
    FAIL() << "a bad account name loaded";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.toml:2:8: server.user: not an account name"), std::string::npos) << e.what();
  }
  try {
    config::load(dir.write("d.toml", "[server]\nadmin_allow = [\"10.0.0.0/8\", \"example.com\"]\n"));
    FAIL() << "a host name loaded as an address block";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("d.toml:2:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("admin_allow: not an address block: \"example.com\""), std::string::npos) << e.what();
  }
}

TEST(ServiceConfig, AdminHosts) {
  test::TempDir dir;
  const std::string site = "[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                           "certificate = \"server.pem\"\n";
  EXPECT_TRUE(config::load(dir.write("a.toml", "[server]\n" + site)).server.admin_hosts.empty());
  EXPECT_EQ(config::load(dir.write("b.toml", "[server]\nadmin_hosts = [\"Certgate1.Example.NET\"]\n" + site)).server.admin_hosts,
            (std::vector<std::string>{"certgate1.example.net"}));
  try {
    config::load(dir.write("c.toml", "[server]\nadmin_hosts = [\"ok.example\", \"evil.example:9180\"]\n"));
    FAIL() << "a host with a port loaded";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.toml:2:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("admin_hosts: not a host name: \"evil.example:9180\""), std::string::npos) << e.what();
  }
}

TEST(AdminAllow, BlocksParseAndMatch) {
  namespace ip = boost::asio::ip;
  auto v4 = net::Cidr::parse("10.20.0.0/14");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->contains(ip::make_address("10.23.255.1")));
  EXPECT_FALSE(v4->contains(ip::make_address("10.24.0.1")));
  EXPECT_TRUE(v4->contains(ip::make_address("::ffff:10.21.0.9")));
  auto one = net::Cidr::parse("::1");
  ASSERT_TRUE(one);
  EXPECT_TRUE(one->contains(ip::make_address("::1")));
  EXPECT_FALSE(one->contains(ip::make_address("::2")));
  EXPECT_FALSE(one->contains(ip::make_address("10.23.255.1")));
  auto all = net::Cidr::parse("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->contains(ip::make_address("10.24.0.1")));
  for (const char* bad : {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/8x", "10.0.0/8", "host", "10.0.0.0/-1"})
    EXPECT_FALSE(net::Cidr::parse(bad)) << bad;
}

TEST(AnswerStats, CountsTheLastHourOnly) {
  http::AnswerStats stats;
  const std::int64_t t0 = 1'800'000'000;
  stats.record(200, 0, http::AnswerStats::kNoVerdict, t0);
  stats.record(200, 0, http::AnswerStats::kNoVerdict, t0 + 30);
  stats.record(403, 16, 7, t0 + 61);
  auto rows = stats.last_hour(t0 + 120);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].status, 200);
  EXPECT_EQ(rows[0].count, 2u);
  EXPECT_EQ(rows[1].status, 403);
  EXPECT_EQ(rows[1].substatus, 16);
  EXPECT_EQ(rows[1].verdict, 7);
  // An hour later the first minute no longer counts; its slot is reused by the new minute.
  rows = stats.last_hour(t0 + 3600);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, 403);
  stats.record(500, 0, http::AnswerStats::kNoVerdict, t0 + 3600);
  rows = stats.last_hour(t0 + 3600);
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& r : rows) EXPECT_NE(r.status, 200);
}

TEST(AnswerStats, BoundedWhateverTheInput) {
  http::AnswerStats stats;
  for (int s = 0; s < 1000; ++s) stats.record(s, s, s % 300, 1'800'000'000);
  std::uint64_t total = 0;
  for (const auto& r : stats.last_hour(1'800'000'000)) total += r.count;
  EXPECT_EQ(total + stats.dropped(), 1000u);
  EXPECT_LE(stats.last_hour(1'800'000'000).size(), 128u);
}

}  // namespace
}  // namespace certgate
