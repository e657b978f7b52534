// Basic password checks (issue 14 hostile pass, docs/security.md "The request pipeline").
#include "http/basic_auth.hpp"

#include <crypt.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace certgate {
namespace {

std::string sha512_crypt(const std::string& password) {
  auto data = std::make_unique<crypt_data>();
  return crypt_r(password.c_str(), "$6$redpipesalt$", data.get());
}

TEST(BasicAuth, RightPasswordPasses) {
  EXPECT_TRUE(http::check_password(sha512_crypt("azure-pw"), "azure-pw"));
  EXPECT_FALSE(http::check_password(sha512_crypt("azure-pw"), "azure-pw2"));
}

// crypt(3) stops at the first NUL: without the check, anything after the right password passed.
TEST(BasicAuth, PasswordWithNulNeverPasses) {
  const std::string hash = sha512_crypt("azure-pw");
  EXPECT_FALSE(http::check_password(hash, std::string("azure-pw\0junk", 13)));
  EXPECT_FALSE(http::check_password(hash, std::string("azure-pw\0", 9)));
}

// The per-loop memory of answers is keyed by user, password and hash together: one user's
// answer is never another's, and a changed hash (users file reloaded) asks again.
TEST(BasicAuth, CacheKeySeparatesUsersPasswordsAndHashes) {
  const std::string k = http::password_cache_key("alice", "pw", "$6$a$h");
  EXPECT_NE(k, http::password_cache_key("bob", "pw", "$6$a$h"));
  EXPECT_NE(k, http::password_cache_key("alice", "pw2", "$6$a$h"));
  EXPECT_NE(k, http::password_cache_key("alice", "pw", "$6$b$h"));
  EXPECT_NE(http::password_cache_key("al", std::string("ice\0pw", 6), "$6$a$h"),
            http::password_cache_key("al\0ice", "pw", "$6$a$h"));
}

}  // namespace
}  // namespace certgate
