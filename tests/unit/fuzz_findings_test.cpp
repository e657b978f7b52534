// Logic bugs the fuzz harnesses (tests/fuzz) found, kept as plain unit tests.
#include "iis/import.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <toml++/toml.h>

namespace certgate {
namespace {

std::string application_host(const std::string& site_name) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<configuration>\n"
         "  <system.applicationHost><sites>\n"
         "    <site name=\"" + site_name + "\" id=\"1\">\n"
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

}  // namespace
}  // namespace certgate
