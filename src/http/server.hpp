#pragma once
// The shell that carries out decisions: one event loop per core, each with its own
// SO_REUSEPORT acceptor on every binding, a file pool for disk reads, and the W3C log writer.
#include "runtime/snapshot.hpp"

#include <memory>

namespace certgate::http {

struct ServeOptions {
  bool quiet = false;  // no startup banner on stderr
};

// Binds every listener, serves until SIGTERM/SIGINT, then stops accepting, lets in-flight
// requests finish (up to shutdown_grace_ms), flushes the logs and returns the exit status.
int serve(std::shared_ptr<const runtime::Snapshot> snapshot, const ServeOptions& options);

}  // namespace certgate::http
