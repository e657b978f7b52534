#include "http/basic_auth.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

namespace certgate::http {
namespace {

constexpr std::int64_t kCacheTtlMs = 60'000;
constexpr std::size_t kCacheMax = 10000;

struct CacheEntry {
  bool ok;
  std::int64_t expires_ms;  // runtime::Clock::steady_ms()
};

std::unordered_map<std::string, CacheEntry>& cache() {
  thread_local std::unordered_map<std::string, CacheEntry> c;
  return c;
}

}  // namespace

bool is_basic(std::string_view h) {
  return h.size() >= 6 && (h.substr(0, 6) == "Basic " || h.substr(0, 6) == "basic " ||
                           h.substr(0, 6) == "BASIC ");
}

std::optional<BasicCredentials> parse_basic(std::string_view h) {
  if (!is_basic(h)) return std::nullopt;
  h.remove_prefix(6);
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && h.back() == ' ') h.remove_suffix(1);
  if (h.empty() || h.size() % 4 != 0 || h.size() > 4096) return std::nullopt;
  std::string out(h.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(h.data()), static_cast<int>(h.size()));
  if (n < 0) return std::nullopt;
  std::size_t len = static_cast<std::size_t>(n);
  if (h.size() >= 1 && h[h.size() - 1] == '=') --len;  // EVP_DecodeBlock counts padding
  if (h.size() >= 2 && h[h.size() - 2] == '=') --len;
  out.resize(len);
  auto colon = out.find(':');
  if (colon == std::string::npos) return std::nullopt;
  BasicCredentials c{out.substr(0, colon), out.substr(colon + 1)};
  for (unsigned char ch : c.user)
    if (ch < 0x20) return std::nullopt;
  return c;
}

bool check_password(const std::string& hash, const std::string& password) {
  // crypt(3) reads a C string: "right\0anything" would pass as "right". No password holds a NUL.
  if (password.find('\0') != std::string::npos) return false;
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on the stack
  const char* out = crypt_r(password.c_str(), hash.c_str(), data.get());
  const bool ok = out != nullptr && out[0] != '*' &&  // "*0"/"*1": unsupported or bad setting
                  std::strlen(out) == hash.size() && CRYPTO_memcmp(out, hash.data(), hash.size()) == 0;
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));  // holds the password's key schedule
  return ok;
}

std::string password_cache_key(const std::string& user, const std::string& password,
                               const std::string& hash) {
  // Length-prefixed, so no (user, password) pair can spell another's material whatever bytes
  // they hold. Built in place: no temporary copy of the password is left uncleansed.
  std::string material;
  material.reserve(user.size() + password.size() + hash.size() + 42);
  material.append(std::to_string(user.size())).append(1, ':').append(user);
  material.append(std::to_string(password.size())).append(1, ':').append(password).append(hash);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(material.data(), material.size(), md, &n, EVP_sha256(), nullptr);
  OPENSSL_cleanse(material.data(), material.size());
  return std::string(reinterpret_cast<char*>(md), n);
}

std::optional<bool> cached_password_result(const std::string& key, const runtime::Clock& clock) {
  auto& c = cache();
  auto it = c.find(key);
  if (it == c.end()) return std::nullopt;
  if (clock.steady_ms() > it->second.expires_ms) {
    c.erase(it);
    return std::nullopt;
  }
  return it->second.ok;
}

void remember_password_result(const std::string& key, bool ok, const runtime::Clock& clock) {
  auto& c = cache();
  if (c.size() >= kCacheMax) c.clear();  // bounded; a cold cache only costs a re-check
  c[key] = CacheEntry{ok, clock.steady_ms() + kCacheTtlMs};
}

}  // namespace certgate::http
