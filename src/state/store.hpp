#pragma once
// The single-use store: "remember this key until its TTL" and "take this key, once". One
// process uses the memory backend; several instances behind one name share Redis, so that a
// nonce or ticket spent at one instance is spent at all of them. Calls never block the calling
// thread: the answer comes back as a handler posted to the executor the caller gives (its own
// event loop), also for the memory backend, so callers have one code path.
//
// Keys live in namespaces (one per use: "token", "step-up", ...) so that a value issued for one
// purpose can never be consumed by another.
#include "config/config.hpp"
#include "runtime/clock.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace certgate::state {

enum class Status : std::uint8_t {
  Done,         // issue: stored; consume: taken now, `value` is what was issued
  AlreadyUsed,  // consume: the key was issued and taken before (within its TTL)
  Unknown,      // consume: never issued here, or its TTL is over
  Unavailable,  // the store could not answer (Redis down, queue full): never treat as success
};
std::string_view describe(Status s);

struct Result {
  Status status = Status::Unavailable;
  std::string value;
  std::string error;  // Unavailable: why (for the log line and the 503's reason)
};
using Handler = std::function<void(Result)>;

class Store {
 public:
  virtual ~Store() = default;
  // Stores `value` under ns:key for `ttl` unless the key exists (then Unavailable: a random key
  // that collides is a broken random source, not something to overwrite).
  virtual void issue(std::string_view ns, std::string_view key, std::string value, std::chrono::seconds ttl,
                     boost::asio::any_io_executor ex, Handler done) = 0;
  // Takes ns:key atomically: exactly one caller across every instance sharing the store gets
  // Done; the key then answers AlreadyUsed until its TTL ends.
  virtual void consume(std::string_view ns, std::string_view key, boost::asio::any_io_executor ex, Handler done) = 0;
  virtual std::string_view backend() const = 0;
};

// Throws std::runtime_error when the settings cannot work (the Redis connection is made lazily:
// Redis down at start is answered Unavailable per call, not a refusal to start).
std::unique_ptr<Store> make_store(const config::StateSettings& s, const runtime::Clock& clock);

}  // namespace certgate::state
