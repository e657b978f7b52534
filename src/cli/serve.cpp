#include "cli/commands.hpp"
#include "config/config.hpp"
#include "http/server.hpp"
#include "pki/load.hpp"
#include "runtime/snapshot.hpp"

#include <spdlog/spdlog.h>

#include <iostream>

namespace certgate::cli {
namespace {

// Parse, check and compile; prints the error and returns null when the config is unusable.
std::shared_ptr<const runtime::Snapshot> load(const std::string& file) {
  try {
    return runtime::compile(config::load(file), 1);
  } catch (const config::ConfigError& e) {
    std::cerr << "certgate: configuration error: " << e.what() << "\n";
  } catch (const runtime::CompileError& e) {
    std::cerr << "certgate: configuration error: " << file << ": " << e.what() << "\n";
  } catch (const pki::LoadError& e) {
    std::cerr << "certgate: configuration error: " << file << ": " << e.what() << "\n";
  }
  return nullptr;
}

}  // namespace

int serve(const std::string& config_file, bool quiet) {
  auto snap = load(config_file);
  if (!snap) return kUsage;
  return http::serve(snap, {quiet});
}

int check_config(const std::string& config_file) {
  auto snap = load(config_file);
  if (!snap) return kUsage;
  for (const auto& w : snap->warnings) std::cerr << "certgate: warning: " << w << "\n";
  std::size_t bindings = 0;
  for (const auto& s : snap->sites) bindings += s.cfg.bindings.size();
  std::cout << "configuration OK: " << config_file << ": " << snap->sites.size() << " site(s), "
            << bindings << " binding(s)\n";
  return kOk;
}

}  // namespace certgate::cli
