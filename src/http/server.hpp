#pragma once
// The shell that carries out decisions: one event loop per core, each with its own
// SO_REUSEPORT acceptor on every binding, a worker pool for disk reads and password hashing,
// the W3C log writer, and reload on SIGHUP.
#include "runtime/snapshot.hpp"

#include <functional>
#include <memory>
#include <string>

namespace certgate::http {

struct ServeOptions {
  bool quiet = false;  // no startup banner on stderr
  // Builds the next generation on SIGHUP; throws with a message when the config is unusable
  // (the running generation then stays in force).
  std::function<std::shared_ptr<const runtime::Snapshot>(std::uint64_t generation)> reload;
  const runtime::Clock* clock = &runtime::system_clock();  // what requests are decided at
};

// Binds every listener, serves until SIGTERM/SIGINT, then stops accepting, lets in-flight
// requests finish (up to shutdown_grace_ms), flushes the logs and returns the exit status.
int serve(std::shared_ptr<const runtime::Snapshot> snapshot, const ServeOptions& options);

}  // namespace certgate::http
