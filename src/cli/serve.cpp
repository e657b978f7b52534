#include "cli/commands.hpp"
#include "config/config.hpp"
#include "http/server.hpp"
#include "pki/load.hpp"
#include "runtime/process_clock.hpp"
#include "runtime/snapshot.hpp"

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>

namespace certgate::cli {
namespace {

// Parse, check and compile; prints the error and returns null when the config is unusable.
std::shared_ptr<const runtime::Snapshot> load(const std::string& file) {
  try {
    return runtime::compile(config::load(file), 1, runtime::process_clock());
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
  http::ServeOptions options;
  options.quiet = quiet;
  options.clock = &runtime::process_clock();
  options.reload = [config_file](std::uint64_t generation) {
    return runtime::compile(config::load(config_file), generation, runtime::process_clock());
  };
  return http::serve(snap, options);
}

int reload(const std::string& config_file, int pid) {
  if (pid <= 0) {
    config::Config cfg;
    try {
      cfg = config::load(config_file);
    } catch (const config::ConfigError& e) {
      std::cerr << "certgate reload: configuration error: " << e.what() << "\n";
      return kUsage;
    }
    if (cfg.server.pid_file.empty()) {
      std::cerr << "certgate reload: set [server] pid_file in " << config_file
                << " (or pass --pid), or send SIGHUP to the server yourself\n";
      return kUsage;
    }
    std::ifstream in(cfg.server.pid_file);
    if (!(in >> pid) || pid <= 0) {
      std::cerr << "certgate reload: cannot read a process id from " << cfg.server.pid_file
                << " (is the server running?)\n";
      return kRejected;
    }
  }
  // Check first, so a mistake is reported here and not only in the server's log.
  if (!config_file.empty() && !load(config_file)) return kUsage;
  if (::kill(pid, SIGHUP) != 0) {
    std::cerr << "certgate reload: cannot signal process " << pid << ": " << std::strerror(errno) << "\n";
    return kRejected;
  }
  std::cout << "reload requested (process " << pid << ")\n";
  return kOk;
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
