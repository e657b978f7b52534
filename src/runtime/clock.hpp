#pragma once
// The one place certgate reads the time. Everything that decides by it (certificate, CRL and
// OCSP dates, cache lifetimes, nonces, session tickets, JWT claims, directory answers) is given a
// Clock, so unit tests drive the time instead of sleeping, and `verify --at` is just another clock.
#include <atomic>
#include <chrono>
#include <cstdint>

namespace certgate::runtime {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in unix seconds: what certificates, CRLs, OCSP answers, JWTs and tickets carry.
  virtual std::int64_t unix_seconds() const = 0;
  // Monotonic milliseconds: deadlines and ages that must not jump when an operator sets the clock.
  virtual std::int64_t steady_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::int64_t unix_seconds() const override {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch()).count();
  }
  std::int64_t steady_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
  }
};

// The process's clock: the system's.
inline const Clock& system_clock() {
  static const SystemClock clock;
  return clock;
}

// A clock a test moves by hand; both readings move together. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t unix_seconds = 1'800'000'000) : unix_ms_(unix_seconds * 1000) {}
  std::int64_t unix_seconds() const override { return unix_ms_.load() / 1000; }
  std::int64_t steady_ms() const override { return steady_ms_.load(); }
  void advance(std::chrono::milliseconds d) {
    unix_ms_ += d.count();
    steady_ms_ += d.count();
  }
  // Sets the wall clock only (an operator setting the time): the monotonic reading stays.
  void set_unix_seconds(std::int64_t s) { unix_ms_ = s * 1000; }

 private:
  std::atomic<std::int64_t> unix_ms_;
  std::atomic<std::int64_t> steady_ms_{1'000'000};
};

}  // namespace certgate::runtime
