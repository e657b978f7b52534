#pragma once
#include "state/store.hpp"

namespace certgate::state {
// Redis through hiredis's synchronous API on a small pool of worker threads, each with its own
// connection (made on first use, made again after an error), behind a bounded queue. rediss://
// speaks TLS (src/state/redis_tls.cpp); the context is built here, so a CA or client certificate
// file that cannot be loaded throws std::runtime_error at start.
std::unique_ptr<Store> make_redis_store(const config::StateSettings& s);
}  // namespace certgate::state
