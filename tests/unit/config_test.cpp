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

TEST(Config, PagesKeysHaveDefaultsAndRefuseBadValues) {
  TempDir dir;
  Config c = load(dir.write("c.toml", kMinimal));
  EXPECT_EQ(c.sites[0].authenticated_cache_control, "private, no-cache");
  EXPECT_FALSE(c.sites[0].client_certificates.ca_list_intermediates);  // no intermediates
  // A line break would let the value inject response headers.
  std::string e = error_of(site_with("authenticated_cache_control = \"private\\r\\nSet-Cookie: x=1\"\n"));
  EXPECT_NE(e.find("c.toml:4:31: sites[0].authenticated_cache_control: must be printable ASCII"), std::string::npos) << e;
  e = error_of(site_with("", "[sites.error_pages]\n\"403.1x\" = \"p.html\"\n"));
  EXPECT_NE(e.find("sites[0].error_pages.403.1x: expected a status"), std::string::npos) << e;
  e = error_of(site_with("", "[sites.error_pages]\n\"403\" = 7\n"));
  EXPECT_NE(e.find("sites[0].error_pages.403: expected a string"), std::string::npos) << e;
  e = error_of(site_with("", "[sites.client_certificates]\nca_list_intermediates = \"yes\"\n"));
  EXPECT_NE(e.find("sites[0].client_certificates.ca_list_intermediates: expected true or false"), std::string::npos) << e;
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

TEST(Config, OnDemandAndStepUpAreCheckedAndRevocationModesAreChecked) {
  std::string e = error_of(std::string(kMinimal) + "client_certificate = \"on-demand\"\n");
  EXPECT_EQ(e, "");
  e = error_of(std::string(kMinimal) + "client_certificate = \"later\"\n");
  EXPECT_NE(e.find("c.toml:7:22: sites[0].bindings[0].client_certificate: expected \"handshake\" or \"on-demand\""),
            std::string::npos) << e;
  e = error_of(site_with("upload_read_ahead_bytes = -1\n"));
  EXPECT_NE(e.find("upload_read_ahead_bytes: must be between 0"), std::string::npos) << e;
  e = error_of(site_with("", "[sites.step_up]\nurl = \"http://login.test/\"\nkey_file = \"k\"\n"));
  EXPECT_NE(e.find("step_up.url: expected an https URL ending with '/'"), std::string::npos) << e;
  e = error_of(site_with("", "[sites.step_up]\nurl = \"https://login.test/\\r\\nX: 1/\"\nkey_file = \"k\"\n"));
  EXPECT_NE(e.find("step_up.url: expected an https URL"), std::string::npos) << e;
  e = error_of(site_with("", "[sites.step_up]\nurl = \"https://login.test/\"\nkey_file = \"k\"\ncookie_name = \"a;b\"\n"));
  EXPECT_NE(e.find("step_up.cookie_name: expected letters"), std::string::npos) << e;
  e = error_of(site_with("", "[sites.step_up]\nurl = \"https://login.test/\"\n"));
  EXPECT_NE(e.find("step_up.key_file: missing"), std::string::npos) << e;
  e = error_of(site_with("", "[sites.step_up]\nurl = \"https://login.test/\"\nkey_file = \"k\"\n"));
  EXPECT_EQ(e, "");
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

TEST(Config, ProxyProtocolKeys) {
  TempDir dir;
  Config c = load(dir.write("c.toml", site_with("", "proxy_protocol = true\nproxy_protocol_from = [\"10.0.0.0/8\", \"::1\"]\n")));
  EXPECT_TRUE(c.sites[0].bindings[0].proxy_protocol);
  EXPECT_EQ(c.sites[0].bindings[0].proxy_protocol_from, (std::vector<std::string>{"10.0.0.0/8", "::1"}));
  EXPECT_FALSE(load(dir.write("d.toml", kMinimal)).sites[0].bindings[0].proxy_protocol);

  // The binding's keys start at line 7 (site_with: name on 3, [[sites.bindings]] on 4).
  EXPECT_EQ(error_of(site_with("", "proxy_protocol = true\nproxy_protocol_from = [\"10.0.0.0/33\"]\n")),
            "c.toml:8:23: sites[0].bindings[0].proxy_protocol_from: \"10.0.0.0/33\" is not an address or "
            "CIDR range (e.g. \"10.0.0.0/8\", \"::1\")");
  EXPECT_NE(error_of(site_with("", "proxy_protocol = true\n")).find(
                "proxy_protocol: needs proxy_protocol_from"), std::string::npos);
  EXPECT_NE(error_of(site_with("", "proxy_protocol_from = [\"10.0.0.1\"]\n")).find(
                "proxy_protocol_from: has no effect without proxy_protocol = true"), std::string::npos);
  EXPECT_NE(error_of(site_with("", "proxy_protocol = \"yes\"\nproxy_protocol_from = [\"10.0.0.1\"]\n")).find(
                "proxy_protocol: expected true or false"), std::string::npos);
  // Two sites on one address:port, one with the header and one without: the header comes
  // before the SNI that would tell them apart.
  const std::string two = site_with("", "proxy_protocol = true\nproxy_protocol_from = [\"127.0.0.1\"]\n") +
                          "[[sites]]\nname = \"B\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                          "host = \"b.test\"\ncertificate = \"server.pem\"\n";
  EXPECT_NE(error_of(two).find("every binding on one address:port must have the same proxy_protocol"),
            std::string::npos);
}

TEST(Config, TicketKeyFiles) {
  TempDir dir;
  Config c = load(dir.write("c.toml", std::string("[server]\nticket_key_files = [\"a.key\", \"/k/b.key\"]\n") + kMinimal));
  EXPECT_EQ(c.server.ticket_key_files, (std::vector<fs::path>{dir.path() / "a.key", "/k/b.key"}));
  EXPECT_EQ(c.server.session_resumption, SessionResumption::Tickets);
  EXPECT_TRUE(load(dir.write("d.toml", kMinimal)).server.ticket_key_files.empty());
  EXPECT_EQ(error_of(std::string("[server]\nsession_resumption = \"cache\"\nticket_key_files = [\"a.key\"]\n") + kMinimal),
            "c.toml:3:20: server.ticket_key_files: needs session_resumption = \"tickets\" (the session cache is "
            "per instance)");
  EXPECT_NE(error_of(std::string("[server]\nticket_key_files = \"a.key\"\n") + kMinimal).find(
                "ticket_key_files: expected an array of strings"), std::string::npos);
}

}  // namespace
}  // namespace certgate::config
