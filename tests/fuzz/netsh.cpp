// `netsh http show sslcert` output: parsed alone, then imported with a fixed one-site
// applicationHost.config, as `certgate import-iis --netsh` does.
#include "fuzz_util.hpp"
#include "iis/import.hpp"

#include <toml++/toml.h>

using namespace certgate;

namespace {
constexpr std::string_view kApplicationHost = R"(<?xml version="1.0" encoding="UTF-8"?>
<configuration>
  <system.applicationHost>
    <sites>
      <site name="Default Web Site" id="1">
        <application path="/"><virtualDirectory path="/" physicalPath="C:\inetpub\wwwroot" /></application>
        <bindings>
          <binding protocol="https" bindingInformation="*:443:" />
          <binding protocol="https" bindingInformation="*:443:www.contoso.com" sslFlags="1" />
        </bindings>
      </site>
    </sites>
  </system.applicationHost>
</configuration>
)";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(fuzz::bytes(data, size));
  (void)iis::parse_netsh(text);

  static const auto ah = fuzz::write_file("applicationHost.config", kApplicationHost);
  iis::ImportOptions o;
  o.applicationhost = ah;
  o.netsh = fuzz::write_file("netsh.txt", text);
  try {
    auto r = iis::import_iis(o);
    (void)toml::parse(r.toml);
  } catch (const iis::ImportError&) {
  } catch (const toml::parse_error& e) {
    std::fprintf(stderr, "import-iis wrote TOML that does not parse: %s\n",
                 std::string(e.description()).c_str());
    std::abort();
  }
  return 0;
}
