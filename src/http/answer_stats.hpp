#pragma once
// Answers over the last hour, for the admin status page: per minute, how many requests ended
// with each status.substatus and (for refusals) which catalogue verdict. Recording is a few
// relaxed atomics on fixed arrays: no lock and no allocation on the request path. A count can
// be lost in the instant a minute's slot is recycled; this is a dashboard, not an audit log
// (the W3C log is that).
#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace certgate::http {

class AnswerStats {
 public:
  static constexpr int kNoVerdict = 255;  // an answer no decision refused (404, 502, ...)

  void record(int status, int substatus, int verdict, std::int64_t unix_seconds) noexcept;

  struct Row {
    int status = 0, substatus = 0, verdict = kNoVerdict;
    std::uint64_t count = 0;
  };
  // Sums over the 60 minutes up to `unix_seconds`, largest count first.
  std::vector<Row> last_hour(std::int64_t unix_seconds) const;
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kMinutes = 60;
  static constexpr std::size_t kSlots = 128;  // distinct answers per minute; more are counted as dropped
  struct Slot {
    std::atomic<std::uint32_t> key{0};  // 0 = free
    std::atomic<std::uint64_t> count{0};
  };
  struct Minute {
    std::atomic<std::int64_t> minute{-2};  // -1 while being cleared
    std::array<Slot, kSlots> slots;
  };
  std::array<Minute, kMinutes> minutes_;
  std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace certgate::http
