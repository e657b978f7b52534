#pragma once
// The MAC'd values a browser carries for certgate: the step-up ticket (one redirect long) and the
// certificate cookie (docs/on-demand.md, threat model in docs/security.md). Each is
// base64url(fields) "." base64url(HMAC-SHA256(key, kind || fields)); the kind byte keeps a
// cookie from passing as a ticket and back. Checked in constant time (CRYPTO_memcmp).
// Shared: the token login (docs/token-login.md) seals its session cookie the same way.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace certgate::session {

// An HMAC key read from a file (at least 32 bytes; every byte counts, newline included).
struct Key {
  std::string bytes;
};
// Throws std::runtime_error naming the file when it is unreadable or too short.
Key load_key(const std::filesystem::path& file);

enum class Kind : char { Cookie = 'C', Ticket = 'T', TokenSession = 'S', Return = 'R' };

struct Claims {
  std::string site;         // the site's name
  std::string user;         // as the pipeline mapped it ("" when the site does not map)
  std::string cert_sha256;  // 32 raw bytes: the leaf's DER digest
  std::int64_t expires = 0; // unix seconds
  std::string generation;   // the configuration's digest (cookies); "" for tickets
  std::string nonce;        // 16 random bytes (tickets: the single-use key)
};

std::string seal(const Key& key, Kind kind, const Claims& claims);

enum class Check { Ok, Malformed, BadMac, OtherSite, Expired, OtherGeneration };
const char* describe(Check c);

// `site`, `generation`: what the value must name; `now`: unix seconds. Claims only on Ok.
Check open(const Key& key, Kind kind, std::string_view value, std::string_view site, std::int64_t now,
           std::string_view generation, Claims& out);

enum class SameSite { Lax, Strict };
// Set-Cookie values: HttpOnly, Secure, Path=/.
std::string set_cookie(std::string_view name, std::string_view value, std::int64_t max_age, SameSite same_site);
std::string clear_cookie(std::string_view name, SameSite same_site);

// The value of cookie `name` in a Cookie header ("" when absent). Several cookies of that name:
// the first, as browsers send the most specific path first.
std::string_view cookie_value(std::string_view header, std::string_view name);

std::string random_bytes(std::size_t n);
// n random bytes in base64url: a value for a cookie or a URL.
std::string random_text(std::size_t n);

// A MAC over a text (the step-up's return URL), base64url; checked in constant time.
std::string sign_text(const Key& key, std::string_view text);
bool verify_text(const Key& key, std::string_view text, std::string_view signature);

}  // namespace certgate::session
