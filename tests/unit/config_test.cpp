// Config errors name file, line, column and key; bad values never load silently.
#include "config/config.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

namespace certgate::config {
namespace {

using test::TempDir;

const char* kMinimal = R"(
[[sites]]
name = "A"
[[sites.bindings]]
listen = "127.0.0.1:8443"
certificate = "server.pem"
)";

// A one-site config with `site_keys` among the site's own keys (line 4 onwards).
std::string site_with(const std::string& site_keys, const std::string& after = "") {
  return "\n[[sites]]\nname = \"A\"\n" + site_keys +
         "[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\ncertificate = \"server.pem\"\n" +
         after;
}

std::string error_of(const std::string& text) {
  TempDir dir;
  auto file = dir.write("c.toml", text);
  try {
    load(file);
  } catch (const ConfigError& e) {
    std::string msg = e.what();
    // Drop the temp folder so assertions can compare positions.
    return msg.substr(msg.find("c.toml"));
  }
  return "";
}

TEST(Config, MinimalConfigLoadsWithDefaults) {
  TempDir dir;
  Config c = load(dir.write("c.toml", kMinimal));
  ASSERT_EQ(c.sites.size(), 1u);
  const Site& s = c.sites[0];
  EXPECT_EQ(s.id, 1);
  EXPECT_EQ(s.bindings[0].address, "127.0.0.1");
  EXPECT_EQ(s.bindings[0].port, 8443);
  EXPECT_TRUE(s.bindings[0].https);
  EXPECT_EQ(s.bindings[0].certificate, dir.path() / "server.pem");
  EXPECT_EQ(s.log.directory, dir.path() / "logs" / "W3SVC1");
  EXPECT_EQ(s.log.fields, default_log_fields());
  EXPECT_EQ(c.server.detailed_errors, DetailedErrors::Local);
  EXPECT_EQ(s.client_certificates.revocation, Revocation::Online);  // behaviour.md §2 default
  EXPECT_EQ(s.client_certificates.url_timeout_ms, 15000u);
  EXPECT_FALSE(s.client_certificates.soft_fail);
}

TEST(Config, SyntaxErrorNamesLineAndColumn) {
  EXPECT_EQ(error_of("[server]\nthreads = = 2\n").substr(0, 11), "c.toml:2:11");
}

TEST(Config, UnknownKeyIsAnErrorWithItsPosition) {
  std::string e = error_of(site_with("root_dir = \"x\"\n"));
  EXPECT_NE(e.find("c.toml:4:1: sites[0].root_dir: unknown key"), std::string::npos) << e;
  e = error_of(site_with("", "hots = \"a.test\"\n"));
  EXPECT_NE(e.find("c.toml:7:1: sites[0].bindings[0].hots: unknown key"), std::string::npos) << e;
}

TEST(Config, BadSslFlagNamesTheKey) {
  std::string e = error_of(site_with("ssl_flags = [\"Ssl\", \"SslRequire\"]\n"));
  EXPECT_NE(e.find("sites[0].ssl_flags: unknown flag \"SslRequire\""), std::string::npos) << e;
}

TEST(Config, NegotiatingWithoutTrustedIssuersIsAnError) {
  std::string e = error_of(site_with("ssl_flags = [\"Ssl\", \"SslRequireCert\"]\n"));
  EXPECT_NE(e.find("trusts no issuer"), std::string::npos) << e;
}

TEST(Config, RequireCertAloneImpliesNegotiateWithAWarning) {
  TempDir dir;
  Config c = load(dir.write("c.toml", site_with("ssl_flags = [\"SslRequireCert\"]\n",
                                               "[sites.client_certificates]\n"
                                               "trusted_cas = [\"ca.pem\"]\n")));
  EXPECT_TRUE(c.sites[0].ssl_flags.has(auth::kSslNegotiateCert));
  ASSERT_EQ(c.warnings.size(), 1u);
}

TEST(Config, WrongTypeIsReported) {
  std::string e = error_of("[server]\nthreads = \"two\"\n" + std::string(kMinimal));
  EXPECT_NE(e.find("c.toml:2:11: server.threads: expected an integer"), std::string::npos) << e;
}

TEST(Config, BadListenAddress) {
  std::string e = error_of("[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"8443\"\ncertificate = \"s.pem\"\n");
  EXPECT_NE(e.find("sites[0].bindings[0].listen: expected address:port"), std::string::npos) << e;
}

TEST(Config, BindingProtocolsAreAlpnNamesInOrder) {
  TempDir dir;
  Config c = load(dir.write("c.toml", kMinimal));
  EXPECT_EQ(c.sites[0].bindings[0].protocols, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(c.server.limits.h2_max_concurrent_streams, 100u);
  c = load(dir.write("c.toml", std::string(kMinimal) + "protocols = [\"http/1.1\", \"h2\"]\n"));
  EXPECT_EQ(c.sites[0].bindings[0].protocols, (std::vector<std::string>{"http/1.1", "h2"}));
  std::string e = error_of(std::string(kMinimal) + "protocols = [\"h2\", \"spdy/3\"]\n");
  EXPECT_NE(e.find("c.toml:7:13: sites[0].bindings[0].protocols: expected \"h2\" or \"http/1.1\"; got \"spdy/3\""),
            std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "protocols = []\n");
  EXPECT_NE(e.find("must name at least one"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "protocols = [\"h2\", \"h2\"]\n");
  EXPECT_NE(e.find("names \"h2\" twice"), std::string::npos) << e;
  e = error_of("[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"http\"\n"
               "protocols = [\"h2\"]\n");
  EXPECT_NE(e.find("https bindings only"), std::string::npos) << e;
  e = error_of("[server]\nh2_max_concurrent_streams = 0\n" + std::string(kMinimal));
  EXPECT_NE(e.find("server.h2_max_concurrent_streams: must be between 1 and 10000"), std::string::npos) << e;
}

TEST(Config, HttpsBindingNeedsACertificate) {
  std::string e = error_of("[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:1\"\n");
  EXPECT_NE(e.find("certificate: missing"), std::string::npos) << e;
}

TEST(Config, OnDemandIsRefusedClearlyAndRevocationModesAreChecked) {
  std::string e = error_of(std::string(kMinimal) + "client_certificate = \"on-demand\"\n");
  EXPECT_NE(e.find("not available in this version"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[sites.client_certificates]\nrevocation = \"online\"\n"
                                        "prefer_ocsp = true\nurl_timeout_ms = 500\nsoft_fail = true\n");
  EXPECT_EQ(e, "");
  e = error_of(std::string(kMinimal) + "[sites.client_certificates]\nrevocation = \"sometimes\"\n");
  EXPECT_NE(e.find("expected one of \"online\", \"cache-only\", \"off\""), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[sites.client_certificates]\nurl_timeout_ms = 5\n");
  EXPECT_NE(e.find("url_timeout_ms: must be between 100"), std::string::npos) << e;
  e = error_of("[server]\nadmin_listen = \"nowhere\"\n" + std::string(kMinimal));
  EXPECT_NE(e.find("admin_listen: expected address:port"), std::string::npos) << e;
  e = error_of("[server]\nsession_resumption = \"sometimes\"\n" + std::string(kMinimal));
  EXPECT_NE(e.find("session_resumption: expected one of \"cache\", \"tickets\""), std::string::npos) << e;
  e = error_of("[server]\nmax_fetch_bytes = 10\n" + std::string(kMinimal));
  EXPECT_NE(e.find("max_fetch_bytes: must be between 1024"), std::string::npos) << e;
}

TEST(Config, DuplicateBindingAcrossSitesIsRefused) {
  std::string two = std::string(kMinimal) + R"(
[[sites]]
name = "B"
[[sites.bindings]]
listen = "127.0.0.1:8443"
certificate = "server.pem"
)";
  EXPECT_NE(error_of(two).find("already used by site \"A\""), std::string::npos);
}

TEST(Config, NoSitesIsAnError) {
  EXPECT_NE(error_of("[server]\nthreads = 1\n").find("no site configured"), std::string::npos);
}

TEST(Config, UnknownLogFieldIsRefused) {
  std::string e = error_of(std::string(kMinimal) + "[sites.log]\nfields = [\"date\", \"sc-colour\"]\n");
  EXPECT_NE(e.find("unknown W3C field \"sc-colour\""), std::string::npos) << e;
}

TEST(Config, MissingFileIsAnError) {
  EXPECT_THROW(load("/nonexistent/certgate.toml"), ConfigError);
}

}  // namespace
}  // namespace certgate::config
