// What reads the time is given a runtime::Clock: tests move a ManualClock instead of sleeping.
#include "http/basic_auth.hpp"
#include "pki/validation_cache.hpp"
#include "runtime/clock.hpp"
#include "tls/ticket_keys.hpp"

#include <gtest/gtest.h>


namespace certgate {
namespace {

TEST(Clock, TicketKeysRotateHourlyAndKeepTwoOld) {
  runtime::ManualClock clock;
  auto at = [&] { return tls::ticket_key_names_at(clock.steady_ms() / 1000); };
  // The keys are the process's: start past any ring another test made, and rotate until the
  // ring holds only keys made by this clock.
  clock.advance(std::chrono::hours(24 * 365 * 100));
  for (int i = 0; i < 3; ++i, clock.advance(std::chrono::hours(1))) at();
  clock.advance(-std::chrono::hours(1));
  const auto before = at();
  ASSERT_EQ(before.size(), 3u);  // the current key and the two before it
  clock.advance(std::chrono::minutes(59));
  EXPECT_EQ(at(), before);  // within the hour: the same keys
  clock.advance(std::chrono::minutes(2));
  const auto after = at();
  ASSERT_EQ(after.size(), 3u);
  EXPECT_NE(after.front(), before.front());
  EXPECT_EQ(after[1], before[0]);  // the previous keys still decrypt (and renew) tickets
  EXPECT_EQ(after[2], before[1]);  // the oldest is retired
}

TEST(Clock, ValidationCacheEntryExpiresByTheClock) {
  runtime::ManualClock clock;
  pki::ValidationCache cache;
  auth::ChainReport good;
  const std::int64_t now = clock.unix_seconds();
  cache.remember("k", good, now, now + 60);
  EXPECT_TRUE(cache.find("k", clock.unix_seconds()));
  clock.advance(std::chrono::seconds(59));
  EXPECT_TRUE(cache.find("k", clock.unix_seconds()));
  clock.advance(std::chrono::seconds(1));
  EXPECT_FALSE(cache.find("k", clock.unix_seconds()));
}

TEST(Clock, PasswordAnswerIsRememberedForAMinute) {
  runtime::ManualClock clock;
  const std::string key = http::password_cache_key("carl", "pw", "$6$salt$hash");
  http::remember_password_result(key, true, clock);
  clock.advance(std::chrono::seconds(60));
  EXPECT_EQ(http::cached_password_result(key, clock), std::optional<bool>(true));
  clock.advance(std::chrono::milliseconds(1));
  EXPECT_EQ(http::cached_password_result(key, clock), std::nullopt);  // checked again
}

}  // namespace
}  // namespace certgate
