#pragma once
// Directory mapping for one site of one configuration generation: a small pool of worker
// threads, each with its own LDAP connection, fed by a bounded queue; one lookup in flight per
// certificate however many requests wait for it; answers cached with a TTL (shorter for "no
// account"). Request loops never wait on the directory: they get a callback.
#include "auth/directory.hpp"
#include "config/config.hpp"
#include "runtime/clock.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace certgate::directory {

struct Mapped {
  std::shared_ptr<const auth::Outcome> outcome;
  std::int64_t expires_ms = 0;  // Clock::steady_ms() after which the directory is asked again
};

class DirectoryService {
 public:
  DirectoryService(config::DirectoryMapping settings, std::string site_name,
                   const runtime::Clock& clock = runtime::system_clock());
  // Tells the workers to finish and interrupts their searches; they exit on their own (the
  // last connection of an old generation may go on a request loop, which must not wait).
  ~DirectoryService();

  // The server's stop, once its loops have stopped: ends the workers (a bind or search in
  // progress is interrupted, not waited for) and waits for them, then drops the callbacks of
  // the lookups still waiting (they hold connections that belong to the loops). Lookups asked
  // for afterwards are answered at once as busy. Idempotent.
  void shutdown();

  // A fresh cached answer for this certificate, if there is one (cheap; any thread).
  std::optional<Mapped> cached(const auth::CertFacts& cert) const;
  // Asks the directory (or joins the lookup already running for this certificate). `done`
  // runs on a worker thread, or at once on the caller's when the queue is full (503).
  void lookup(const auth::CertFacts& cert, std::function<void(Mapped)> done);

  const config::DirectoryMapping& settings() const;
  const auth::DirectoryPolicy& policy() const;
  const auth::DirectoryNaming& naming() const;

  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
  std::vector<std::thread> workers_;  // touched only by the owner's thread
};

}  // namespace certgate::directory
