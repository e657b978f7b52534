#include "config/config.hpp"
#include "test_util.hpp"

namespace certgate::test {

std::string config_error(const std::string& toml) {
  TempDir dir;
  auto file = dir.write("c.toml", toml);
  try {
    config::load(file);
  } catch (const config::ConfigError& e) {
    std::string msg = e.what();
    return msg.substr(msg.find("c.toml"));
  }
  return "";
}

}  // namespace certgate::test
