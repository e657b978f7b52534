// The TOML configuration loader on arbitrary text: a configuration is loaded or refused with a
// ConfigError (file:line:col), never anything else. The loader only reads files, so the input
// is written to a private scratch folder first.
#include "config/config.hpp"
#include "fuzz_util.hpp"

using namespace certgate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto file = fuzz::scratch() / "certgate.toml";
  fuzz::write_file("certgate.toml", fuzz::bytes(data, size));
  try {
    config::Config cfg = config::load(file);
    FUZZ_CHECK(!cfg.sites.empty());
  } catch (const config::ConfigError& e) {
    FUZZ_CHECK(*e.what() != '\0');
  }
  return 0;
}
