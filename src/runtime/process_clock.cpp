#include "runtime/process_clock.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stop_token>
#include <string>
#include <thread>

namespace certgate::runtime {
namespace {

class OffsetClock final : public Clock {
 public:
  explicit OffsetClock(std::filesystem::path file) : file_(std::move(file)) {
    spdlog::warn("CERTGATE_TEST_CLOCK_FILE is set: this server's clock is shifted by the seconds in {} "
                 "(for tests only; never set it in production)", file_.string());
    poll();
    thread_ = std::jthread([this](std::stop_token stop) {
      while (!stop.stop_requested()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        poll();
      }
    });
  }
  std::int64_t unix_seconds() const override { return system_clock().unix_seconds() + offset_.load(); }
  std::int64_t steady_ms() const override { return system_clock().steady_ms() + offset_.load() * 1000; }

 private:
  void poll() {
    std::ifstream in(file_);
    long long seconds = 0;
    if (!(in >> seconds)) seconds = 0;  // absent or empty: no shift
    if (seconds != offset_.exchange(seconds)) spdlog::warn("test clock: offset now {} s", seconds);
  }

  std::filesystem::path file_;
  std::atomic<std::int64_t> offset_{0};
  std::jthread thread_;
};

}  // namespace

const Clock& process_clock() {
  static const Clock& clock = []() -> const Clock& {
    const char* file = std::getenv("CERTGATE_TEST_CLOCK_FILE");
    if (file == nullptr || *file == '\0') return system_clock();
    static OffsetClock offset(file);
    return offset;
  }();
  return clock;
}

}  // namespace certgate::runtime
