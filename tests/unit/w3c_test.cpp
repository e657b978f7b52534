// W3C lines must be byte-compatible with IIS (spec: behaviour.md §8).
#include "log/w3c.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace certgate::log {
namespace {

TEST(W3c, EscapesLikeIis) {
  std::string out;
  append_value(out, "");
  out += '|';
  append_value(out, "Mozilla/5.0 (X11; Linux)");
  out += '|';
  append_value(out, "a\tb\r\nc");
  EXPECT_EQ(out, "-|Mozilla/5.0+(X11;+Linux)|a+b++c");
}

// The log is UTF-8: a raw byte from a Host or a URL becomes '?', a well-formed character stays.
TEST(W3c, KeepsTheLogUtf8) {
  std::string out;
  append_value(out, "lo\xff" "cal \xc3\xa9 \xc0\x80 \xed\xa0\x80 \xe2\x80\xae \xf0\x9f\x94\x92 \xe2\x80");
  EXPECT_EQ(out, "lo?cal+\xc3\xa9+??+???+\xe2\x80\xae+\xf0\x9f\x94\x92+??");
}

TEST(W3c, DefaultFieldsLine) {
  Format f(config::default_log_fields());
  Entry e;
  e.unix_ms = 1795000000123;  // 2026-11-18 11:06:40.123 UTC
  e.s_ip = "127.0.0.1";
  e.method = "GET";
  e.uri_stem = "/a b";
  e.s_port = 8443;
  e.c_ip = "127.0.0.2";
  e.user_agent = "curl/8";
  e.status = 403;
  e.substatus = 16;
  e.win32 = 2148204809u;
  e.time_taken_ms = 7;
  EXPECT_EQ(f.line(e),
            "2026-11-18 11:06:40 127.0.0.1 GET /a+b - 8443 - 127.0.0.2 curl/8 - 403 16 "
            "2148204809 7");
  EXPECT_EQ(f.fields_header(),
            "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
            "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken");
}

TEST(W3c, FileNamesPerPeriod) {
  const std::int64_t t = 1795000000;  // 2026-11-18 11:06:40 UTC; November 1 is a Sunday
  EXPECT_EQ(file_name(config::LogPeriod::Daily, t), "u_ex261118.log");
  EXPECT_EQ(file_name(config::LogPeriod::Hourly, t), "u_ex26111811.log");
  EXPECT_EQ(file_name(config::LogPeriod::Monthly, t), "u_ex2611.log");
  EXPECT_EQ(file_name(config::LogPeriod::Weekly, t), "u_ex261103.log");
}

TEST(W3c, WriterWritesHeaderOnceAndRollsDaily) {
  test::TempDir dir;
  config::SiteLog cfg;
  cfg.directory = dir.path() / "W3SVC1";
  cfg.fields = {"date", "sc-status"};
  Writer w;
  auto h = w.add_site(cfg, "certgate test");
  w.write(h, 1795000000, "2026-11-18 200");
  w.write(h, 1795000001, "2026-11-18 404");
  w.write(h, 1795000000 + 86400, "2026-11-19 200");
  w.flush();
  // Each file: one header block (#Software, #Version, #Date, #Fields), then its lines.
  auto lines_of = [&](const char* name) {
    std::ifstream in(cfg.directory / name);
    std::stringstream all;
    all << in.rdbuf();
    std::vector<std::string> out;
    std::string text = all.str();
    for (std::size_t at = 0; at < text.size();) {
      const std::size_t end = text.find("\r\n", at);
      if (end == std::string::npos) break;
      std::string line = text.substr(at, end - at);
      if (line.rfind("#Date: ", 0) == 0) line = "#Date: …";
      out.push_back(std::move(line));
      at = end + 2;
    }
    return out;
  };
  const std::vector<std::string> header{"#Software: certgate test", "#Version: 1.0", "#Date: …",
                                        "#Fields: date sc-status"};
  auto expect = [&](std::vector<std::string> body) {
    body.insert(body.begin(), header.begin(), header.end());
    return body;
  };
  EXPECT_EQ(lines_of("u_ex261118.log"), expect({"2026-11-18 200", "2026-11-18 404"}));
  EXPECT_EQ(lines_of("u_ex261119.log"), expect({"2026-11-19 200"}));
}

}  // namespace
}  // namespace certgate::log
