// Location matching and the merge of site and location settings (behaviour.md §1 step 1).
#include "runtime/snapshot.hpp"

#include <gtest/gtest.h>

namespace certgate::runtime {
namespace {

TEST(Location, MatchesWholeSegmentsCaseInsensitively) {
  EXPECT_TRUE(path_in_location("/admin", "/admin"));
  EXPECT_TRUE(path_in_location("/Admin/x", "/admin"));
  EXPECT_FALSE(path_in_location("/administrator", "/admin"));
  EXPECT_FALSE(path_in_location("/adm", "/admin"));
  EXPECT_TRUE(path_in_location("/anything", "/"));
}

TEST(Location, NearestLocationWins) {
  SiteRuntime s;
  s.cfg.ssl_flags = auth::SslFlags{auth::kSsl | auth::kSslNegotiateCert | auth::kSslRequireCert};
  s.cfg.anonymous = true;
  config::Location pub{"/public", auth::SslFlags{auth::kSsl}, std::nullopt};
  config::Location deep{"/public/private", auth::SslFlags{auth::kSsl | auth::kSslRequireCert | auth::kSslNegotiateCert}, false};
  s.locations = {{"/public", pub, {}}, {"/public/private", deep, {}}};
  s.finalize_policies();
  EXPECT_TRUE(s.policy_for("/").ssl_flags.has(auth::kSslRequireCert));
  EXPECT_FALSE(s.policy_for("/public/x").ssl_flags.has(auth::kSslRequireCert));
  EXPECT_TRUE(s.policy_for("/PUBLIC/private/y").ssl_flags.has(auth::kSslRequireCert));
  EXPECT_FALSE(s.policy_for("/public/private").anonymous);
  EXPECT_TRUE(s.policy_for("/public").anonymous);
}

}  // namespace
}  // namespace certgate::runtime
