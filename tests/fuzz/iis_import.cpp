// `certgate import-iis` on arbitrary XML: an applicationHost.config, optionally followed by a
// line "=====web.config=====" and a web.config for "Default Web Site/secure/admin". The import
// succeeds or throws ImportError; what it writes is TOML that certgate's loader can read.
#include "config/config.hpp"
#include "fuzz_util.hpp"
#include "iis/import.hpp"

#include <toml++/toml.h>

using namespace certgate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto [ah, web] = fuzz::split(fuzz::bytes(data, size), "\n=====web.config=====\n");
  iis::ImportOptions o;
  o.applicationhost = fuzz::write_file("applicationHost.config", ah);
  if (!web.empty())
    o.web_configs.emplace_back("Default Web Site/secure/admin", fuzz::write_file("web.config", web));
  o.path_maps.emplace_back("C:\\inetpub", "/srv/inetpub");
  iis::ImportResult r;
  try {
    r = iis::import_iis(o);
  } catch (const iis::ImportError& e) {
    FUZZ_CHECK(*e.what() != '\0');
    return 0;
  }
  try {
    (void)toml::parse(r.toml);
  } catch (const toml::parse_error& e) {
    std::fprintf(stderr, "import-iis wrote TOML that does not parse: %s\n%s\n",
                 std::string(e.description()).c_str(), r.toml.c_str());
    std::abort();
  }
  try {
    (void)config::load(fuzz::write_file("imported.toml", r.toml));
  } catch (const config::ConfigError&) {
    // Refusing an imported configuration (a site without bindings, say) is a clean outcome.
  }
  return 0;
}
