#include "http/answer_stats.hpp"

#include <algorithm>
#include <map>

namespace certgate::http {
namespace {

std::uint32_t key_of(int status, int substatus, int verdict) {
  const auto s = static_cast<std::uint32_t>(std::clamp(status, 0, 999));
  const auto sub = static_cast<std::uint32_t>(std::clamp(substatus, 0, 999));
  const auto v = static_cast<std::uint32_t>(std::clamp(verdict, 0, 255));
  return ((s * 1000 + sub) << 8 | v) + 1;
}

}  // namespace

void AnswerStats::record(int status, int substatus, int verdict, std::int64_t unix_seconds) noexcept {
  const std::int64_t minute = unix_seconds / 60;
  Minute& m = minutes_[static_cast<std::size_t>(minute) % kMinutes];
  std::int64_t seen = m.minute.load(std::memory_order_acquire);
  if (seen != minute) {
    // The slot last held a minute an hour (or more) ago: the first request of the new minute
    // clears it; anyone arriving meanwhile, or with an older clock, is not counted.
    if (seen == -1 || seen > minute || !m.minute.compare_exchange_strong(seen, -1)) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    for (auto& s : m.slots) {
      s.count.store(0, std::memory_order_relaxed);
      s.key.store(0, std::memory_order_relaxed);
    }
    m.minute.store(minute, std::memory_order_release);
  }
  const std::uint32_t key = key_of(status, substatus, verdict);
  for (std::size_t i = 0, at = key % kSlots; i < kSlots; ++i, at = (at + 1) % kSlots) {
    Slot& s = m.slots[at];
    std::uint32_t k = s.key.load(std::memory_order_relaxed);
    if (k == 0 && s.key.compare_exchange_strong(k, key, std::memory_order_relaxed)) k = key;
    if (k == key) {
      s.count.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<AnswerStats::Row> AnswerStats::last_hour(std::int64_t unix_seconds) const {
  const std::int64_t now = unix_seconds / 60;
  std::map<std::uint32_t, std::uint64_t> sums;
  for (const auto& m : minutes_) {
    const std::int64_t minute = m.minute.load(std::memory_order_acquire);
    if (minute < 0 || minute > now || minute <= now - static_cast<std::int64_t>(kMinutes)) continue;
    for (const auto& s : m.slots) {
      const std::uint32_t k = s.key.load(std::memory_order_relaxed);
      if (k != 0) sums[k] += s.count.load(std::memory_order_relaxed);
    }
  }
  std::vector<Row> out;
  for (const auto& [key, count] : sums) {
    if (count == 0) continue;
    const std::uint32_t k = key - 1;
    out.push_back({static_cast<int>((k >> 8) / 1000), static_cast<int>((k >> 8) % 1000),
                   static_cast<int>(k & 0xff), count});
  }
  std::stable_sort(out.begin(), out.end(), [](const Row& a, const Row& b) { return a.count > b.count; });
  return out;
}

}  // namespace certgate::http
