// Request filtering (hidden segments) and what a reload or a new CRL must not leave behind: the
// hidden-segment matcher, its configuration keys, their import from IIS, and the validation
// cache's revocation epoch.
#include "config/config.hpp"
#include "http/path.hpp"
#include "http/request_filter.hpp"
#include "iis/import.hpp"
#include "pki/validation_cache.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

namespace certgate {
namespace {

using test::TempDir;

http::HiddenSegments iis_defaults() {
  http::HiddenSegments h;
  for (auto n : config::default_hidden_segments()) {
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    h.names.push_back(n);
  }
  return h;
}

// The segment found for a raw request target, after the normaliser ("<400>": rejected earlier).
std::string hidden(std::string_view target, const http::HiddenSegments& h = iis_defaults()) {
  auto t = http::normalize_target(target);
  if (!t) return "<400>";
  return std::string(http::hidden_segment(t->path, h));
}

TEST(HiddenSegments, IisDefaultsAnySegmentAnyCase) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"/web.config", "web.config"},
      {"/WEB.CONFIG", "WEB.CONFIG"},
      {"/sub/Web.Config", "Web.Config"},
      {"/bin/x.dll", "bin"},
      {"/Bin/", "Bin"},
      {"/App_Data/db.mdf", "App_Data"},
      {"/app_code/x.cs", "app_code"},
      {"/App_GlobalResources/r.resx", "App_GlobalResources"},
      {"/App_LocalResources/r", "App_LocalResources"},
      {"/App_WebReferences/w", "App_WebReferences"},
      {"/App_Browsers/b", "App_Browsers"},
      {"/a/b/bin", "bin"},
      // not hidden: whole segments only
      {"/binary/x", ""},
      {"/cabin/x", ""},
      {"/web.config.bak", ""},
      {"/my.web.config", ""},
      {"/App_Data2/x", ""},
      {"/", ""},
      {"/index.html", ""},
  };
  for (const auto& [target, seg] : cases) EXPECT_EQ(hidden(target), seg) << target;
}

TEST(HiddenSegments, WindowsSpellingsAndEncodings) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"/web.config.", "web.config."},
      {"/web.config...", "web.config..."},
      {"/web.config%20", "web.config "},
      {"/web.config.%20.", "web.config. ."},
      {"/web.config::$DATA", "web.config::$DATA"},
      {"/web.config:alt:$DATA", "web.config:alt:$DATA"},
      {"/bin./x", "bin."},
      {"/web%2Econfig", "web.config"},
      {"/%62in/x", "bin"},
      {"/bin%5cx.dll", "bin"},
      {"/bin%2fx.dll", "bin"},
      {"/x/../web.config", "web.config"},
      {"//bin//x", "bin"},
      // 8.3 short names exist only on Windows volumes: not recognised
      {"/WEB~1.CON", ""},
  };
  for (const auto& [target, seg] : cases) EXPECT_EQ(hidden(target), seg) << target;
}

TEST(HiddenSegments, DotSegments) {
  EXPECT_EQ(hidden("/.git/config"), ".git");
  EXPECT_EQ(hidden("/%2egit/config"), ".git");
  EXPECT_EQ(hidden("/.env"), ".env");
  EXPECT_EQ(hidden("/a/.htpasswd"), ".htpasswd");
  EXPECT_EQ(hidden("/.well-known/acme-challenge/x"), "");
  EXPECT_EQ(hidden("/.WELL-KNOWN/security.txt"), "");
  EXPECT_EQ(hidden("/a.b/c"), "");
  EXPECT_EQ(hidden("/../x"), "<400>");
  http::HiddenSegments allow = iis_defaults();
  allow.allow_dot_segments = true;
  EXPECT_EQ(hidden("/.git/config", allow), "");
  EXPECT_EQ(hidden("/.git/web.config", allow), "web.config");
}

TEST(HiddenSegments, EmptyListAllowsEverythingButDots) {
  http::HiddenSegments none;
  EXPECT_EQ(hidden("/web.config", none), "");
  EXPECT_EQ(hidden("/.env", none), ".env");
}

std::string config_error(const std::string& site_keys, const std::string& after = "") {
  return test::config_error("\n[[sites]]\nname = \"A\"\n" + site_keys +
                            "[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\ncertificate = \"s.pem\"\n" + after);
}

TEST(HiddenSegmentsConfig, DefaultsAndOverrides) {
  TempDir dir;
  auto file = dir.write("c.toml",
                        "[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                        "certificate = \"s.pem\"\n[[sites.locations]]\npath = \"/api\"\nhidden_segments = []\n"
                        "allow_dot_segments = true\n");
  auto c = config::load(file);
  EXPECT_EQ(c.sites[0].hidden_segments, config::default_hidden_segments());
  EXPECT_FALSE(c.sites[0].allow_dot_segments);
  ASSERT_TRUE(c.sites[0].locations[0].hidden_segments);
  EXPECT_TRUE(c.sites[0].locations[0].hidden_segments->empty());
  EXPECT_EQ(c.sites[0].locations[0].allow_dot_segments, true);
}

TEST(HiddenSegmentsConfig, BadValuesNameFileLineAndKey) {
  EXPECT_EQ(config_error("hidden_segments = \"bin\"\n"), "c.toml:4:19: sites[0].hidden_segments: expected an array of strings");
  EXPECT_EQ(config_error("hidden_segments = [1]\n"), "c.toml:4:20: sites[0].hidden_segments: expected an array of strings");
  for (const char* bad : {"a/b", "", "..", "web.config.", "bin ", "x:y", "a\\\\b"}) {
    std::string err = config_error(std::string("hidden_segments = [\"") + bad + "\"]\n");
    EXPECT_NE(err.find("c.toml:4:19: sites[0].hidden_segments: "), std::string::npos) << bad << ": " << err;
    EXPECT_NE(err.find("is not a path segment name"), std::string::npos) << bad << ": " << err;
  }
  EXPECT_NE(config_error("allow_dot_segments = \"yes\"\n").find("sites[0].allow_dot_segments: expected true or false"),
            std::string::npos);
  EXPECT_NE(config_error("", "[[sites.locations]]\npath = \"/x\"\nhidden_segments = [\"a/b\"]\n")
                .find("sites[0].locations[0].hidden_segments: \"a/b\" is not a path segment name"),
            std::string::npos);
}

TEST(HiddenSegmentsImport, ClearAddRemoveCarryOverToSiteAndLocation) {
  TempDir dir;
  auto ah = dir.write("applicationHost.config", R"(<configuration>
  <system.webServer><security><requestFiltering>
    <requestLimits maxAllowedContentLength="1000" />
    <hiddenSegments applyToWebDAV="true">
      <add segment="web.config" /><add segment="bin" /><add segment="App_Data" />
    </hiddenSegments>
  </requestFiltering></security></system.webServer>
  <location path="Site"><system.webServer><security><requestFiltering><hiddenSegments>
    <remove segment="BIN" /><add segment="secrets" />
  </hiddenSegments></requestFiltering></security></system.webServer></location>
  <location path="Site/api"><system.webServer><security><requestFiltering><hiddenSegments>
    <clear />
  </hiddenSegments></requestFiltering></security></system.webServer></location>
  <system.applicationHost><sites><site name="Site" id="1">
    <bindings><binding protocol="http" bindingInformation="*:8080:" /></bindings>
  </site></sites></system.applicationHost>
</configuration>)");
  iis::ImportOptions o;
  o.applicationhost = ah;
  auto r = iis::import_iis(o);
  EXPECT_NE(r.toml.find("hidden_segments = [\"web.config\", \"App_code\", \"App_GlobalResources\", "
                        "\"App_LocalResources\", \"App_WebReferences\", \"App_Data\", \"App_Browsers\", \"secrets\"]\n"),
            std::string::npos)
      << r.toml;
  EXPECT_NE(r.toml.find("path = \"/api\"\n  hidden_segments = []\n"), std::string::npos) << r.toml;
  auto has = [](const std::vector<std::string>& v, const std::string& text) {
    for (const auto& s : v)
      if (s.find(text) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has(r.report.imported, "requestFiltering hiddenSegments (3 entries)"));
  EXPECT_TRUE(has(r.report.ignored, "applyToWebDAV"));
  EXPECT_TRUE(has(r.report.ignored, "<requestLimits>"));
  EXPECT_TRUE(has(r.report.differences, "dot-segments"));
  // the output loads
  auto toml = dir.write("certgate.toml", r.toml);
  EXPECT_NO_THROW(config::load(toml));
}

TEST(ValidationCacheEpoch, AnEntryFromAnotherRevocationEpochIsAMiss) {
  pki::ValidationCache cache;
  auth::ChainReport ok;
  cache.remember("k", ok, 100, 200, 7);
  auto hit = cache.find("k", 150, 7);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->expires, 200);
  EXPECT_FALSE(cache.find("k", 150, 8));  // a CRL that may revoke it arrived meanwhile
  EXPECT_FALSE(cache.find("k", 150, 7));  // and the stale entry is gone
  cache.remember("k", ok, 100, 200, 8);
  EXPECT_FALSE(cache.find("k", 200, 8));  // expired
  auth::ChainReport bad{auth::ChainFault::Revoked, "revoked", {}};
  cache.remember("r", bad, 100, 200, 8);
  EXPECT_FALSE(cache.find("r", 150, 8));  // failures are never cached
}

}  // namespace
}  // namespace certgate
