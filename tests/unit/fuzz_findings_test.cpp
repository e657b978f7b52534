// Logic bugs the fuzz harnesses (tests/fuzz) found, kept as plain unit tests.
#include "iis/import.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <toml++/toml.h>

namespace certgate {
namespace {

std::string application_host(const std::string& site_name, const std::string& id = "1") {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<configuration>\n"
         "  <system.applicationHost><sites>\n"
         "    <site name=\"" + site_name + "\" id=\"" + id + "\">\n"
         "      <bindings><binding protocol=\"https\" bindingInformation=\"*:443:\" /></bindings>\n"
         "    </site>\n"
         "  </sites></system.applicationHost>\n</configuration>\n";
}

// import-iis used to copy invalid UTF-8 into the TOML it wrote, which then failed to load.
TEST(FuzzFindings, ImportRefusesInvalidUtf8WithItsPlace) {
  test::TempDir dir;
  iis::ImportOptions o;
  o.applicationhost = dir.write("applicationHost.config", application_host("Bad\xb1\xad Site"));
  try {
    iis::import_iis(o);
    FAIL() << "imported a file with invalid UTF-8";
  } catch (const iis::ImportError& e) {
    EXPECT_NE(std::string(e.what()).find("applicationHost.config:4:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not valid UTF-8"), std::string::npos) << e.what();
  }
  for (const char* bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xff"}) {
    o.applicationhost = dir.write("applicationHost.config", application_host(std::string("S") + bad));
    EXPECT_THROW(iis::import_iis(o), iis::ImportError) << bad;
  }
}

// Valid UTF-8 and DEL survive as TOML that parses back to the same name.
TEST(FuzzFindings, ImportedNamesRoundTripThroughToml) {
  test::TempDir dir;
  iis::ImportOptions o;
  const std::pair<std::string, std::string> names[] = {
      {"Caf\xc3\xa9 \xf0\x9f\x94\x92", "Caf\xc3\xa9 \xf0\x9f\x94\x92"},
      {"Del\x7fSite", "Del\x7fSite"},
      {"Quote&quot; \\ Site", "Quote\" \\ Site"}};
  for (const auto& [xml, name] : names) {
    o.applicationhost = dir.write("applicationHost.config", application_host(xml));
    const auto r = iis::import_iis(o);
    toml::table t;
    ASSERT_NO_THROW(t = toml::parse(r.toml)) << r.toml;
    EXPECT_EQ(t["sites"][0]["name"].value_or(std::string()), name);
  }
}

// The site id was copied into the TOML as written: control characters made it unloadable, and
// after a newline (`&#10;`) came keys of the site's own choosing, a backend for instance.
TEST(FuzzFindings, ImportWritesTheSiteIdOnlyAsANumber) {
  test::TempDir dir;
  iis::ImportOptions o;
  for (const char* id : {"7&#29;", "2&#10;backend = &quot;http://127.0.0.9:80&quot;", "2 \n[server]\nthreads = 64", "-1", "x", ""}) {
    o.applicationhost = dir.write("applicationHost.config", application_host("S", id));
    const auto r = iis::import_iis(o);
    toml::table t;
    ASSERT_NO_THROW(t = toml::parse(r.toml)) << id << "\n" << r.toml;
    EXPECT_FALSE(t["sites"][0]["id"]) << id;
    EXPECT_FALSE(t["server"]["threads"]) << id;
    EXPECT_FALSE(t["sites"][0]["backend"]) << id;
    bool reported = false;
    for (const auto& line : r.report.ignored) reported = reported || line.find("site id") != std::string::npos;
    EXPECT_TRUE(reported) << id;
  }
  o.applicationhost = dir.write("applicationHost.config", application_host("S", "42"));
  EXPECT_EQ(toml::parse(iis::import_iis(o).toml)["sites"][0]["id"].value_or(0), 42);
}

// netsh output reaches TOML comments and strings: invalid UTF-8 is refused, control characters
// in a comment are blanked.
TEST(FuzzFindings, ImportKeepsNetshValuesOutOfTomlSyntax) {
  test::TempDir dir;
  iis::ImportOptions o;
  o.applicationhost = dir.write("applicationHost.config", application_host("S"));
  const std::string block = "    IP:port                 : 0.0.0.0:443\n    Certificate Hash        : ab\x01" "cd\n"
                            "    Certificate Store Name  : My\x1bStore\n    Negotiate Client Certificate : Enabled\n";
  o.netsh = dir.write("netsh.txt", block);
  const auto r = iis::import_iis(o);
  ASSERT_NO_THROW((void)toml::parse(r.toml)) << r.toml;
  o.netsh = dir.write("netsh.txt", block + "    Ctl Store Name          : \xc3\x28\n");
  EXPECT_THROW(iis::import_iis(o), iis::ImportError);
}

}  // namespace
}  // namespace certgate
