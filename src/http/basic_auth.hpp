#pragma once
// Basic authentication credentials: parsing, and checking a password against a crypt(3) hash.
// Checking is deliberately slow (bcrypt, sha-crypt, yescrypt), so it runs on the worker pool,
// never on a request loop; recent results are remembered per loop thread by a digest of
// (user, password, hash) — the password itself is never stored or logged.
#include "runtime/clock.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace certgate::http {

struct BasicCredentials {
  std::string user;
  std::string password;
};

// "Basic dXNlcjpwYXNz" → {user, pass}; nullopt for another scheme or malformed base64.
std::optional<BasicCredentials> parse_basic(std::string_view authorization);
bool is_basic(std::string_view authorization);

// Blocking: run on the worker pool. Constant-time comparison of the computed hash.
bool check_password(const std::string& hash, const std::string& password);

// The calling loop thread's memory of recent checks (60 s; bounded).
std::string password_cache_key(const std::string& user, const std::string& password,
                               const std::string& hash);
std::optional<bool> cached_password_result(const std::string& key, const runtime::Clock& clock);
void remember_password_result(const std::string& key, bool ok, const runtime::Clock& clock);

}  // namespace certgate::http
