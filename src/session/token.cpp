#include "session/token.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace certgate::session {
namespace {

constexpr std::size_t kMac = 32;
constexpr std::size_t kMaxField = 1024;  // a user name or site name longer than this is refused

void put(std::string& out, std::string_view field) {
  out += static_cast<char>((field.size() >> 8) & 0xff);
  out += static_cast<char>(field.size() & 0xff);
  out.append(field);
}

bool get(std::string_view& in, std::string_view& field) {
  if (in.size() < 2) return false;
  const std::size_t n = (std::size_t{static_cast<unsigned char>(in[0])} << 8) | static_cast<unsigned char>(in[1]);
  if (n > kMaxField || in.size() < 2 + n) return false;
  field = in.substr(2, n);
  in.remove_prefix(2 + n);
  return true;
}

std::string b64url(std::string_view raw) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((raw.size() * 4 + 2) / 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : raw) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  return out;
}

std::optional<std::string> unb64url(std::string_view text) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char ch : text) {
    int v;
    if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
    else if (ch == '-') v = 62;
    else if (ch == '_') v = 63;
    else return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Only the canonical encoding: leftover bits must be zero (one value, one spelling).
  if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string mac(const Key& key, Kind kind, std::string_view fields) {
  std::string data(1, static_cast<char>(kind));
  data.append(fields);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.bytes.data(), static_cast<int>(key.bytes.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &n);
  return std::string(reinterpret_cast<char*>(md), n);
}

std::string encode_expiry(std::int64_t t) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i, t >>= 8) s[static_cast<std::size_t>(i)] = static_cast<char>(t & 0xff);
  return s;
}

std::int64_t decode_expiry(std::string_view s) {
  std::uint64_t v = 0;
  for (unsigned char c : s) v = (v << 8) | c;
  return static_cast<std::int64_t>(v);
}

}  // namespace

Key load_key(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot read the key file");
  Key k;
  k.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (k.bytes.size() < 32)
    throw std::runtime_error(file.string() + ": the key must hold at least 32 bytes (e.g. "
                             "head -c 32 /dev/urandom > " + file.filename().string() + "); it has " +
                             std::to_string(k.bytes.size()));
  return k;
}

std::string seal(const Key& key, Kind kind, const Claims& c) {
  std::string fields;
  put(fields, c.site);
  put(fields, c.user);
  put(fields, c.cert_sha256);
  put(fields, encode_expiry(c.expires));
  put(fields, c.generation);
  put(fields, c.nonce);
  return b64url(fields) + "." + b64url(mac(key, kind, fields));
}

const char* describe(Check c) {
  switch (c) {
    case Check::Ok: return "valid";
    case Check::Malformed: return "malformed";
    case Check::BadMac: return "its MAC does not match (tampered, or made with another key)";
    case Check::OtherSite: return "made for another site";
    case Check::Expired: return "expired";
    case Check::OtherGeneration: return "made under an earlier configuration (reloaded since)";
  }
  return "invalid";
}

Check open(const Key& key, Kind kind, std::string_view value, std::string_view site, std::int64_t now,
           std::string_view generation, Claims& out) {
  if (value.size() > 4 * kMaxField) return Check::Malformed;
  const auto dot = value.find('.');
  if (dot == std::string_view::npos) return Check::Malformed;
  auto fields = unb64url(value.substr(0, dot));
  auto tag = unb64url(value.substr(dot + 1));
  if (!fields || !tag || tag->size() != kMac) return Check::Malformed;
  // The MAC first: nothing of an unauthenticated value is looked at, not even to refuse it.
  const std::string expected = mac(key, kind, *fields);
  if (CRYPTO_memcmp(expected.data(), tag->data(), kMac) != 0) return Check::BadMac;
  std::string_view in = *fields, s, u, cert, exp, gen, nonce;
  if (!get(in, s) || !get(in, u) || !get(in, cert) || !get(in, exp) || !get(in, gen) || !get(in, nonce) ||
      !in.empty() || exp.size() != 8 || cert.size() != 32)
    return Check::Malformed;
  if (s != site) return Check::OtherSite;
  const std::int64_t expires = decode_expiry(exp);
  if (expires <= now) return Check::Expired;
  // Constant time: for a step-up ticket this slot holds the browser's secret state.
  if (gen.size() != generation.size() || CRYPTO_memcmp(gen.data(), generation.data(), gen.size()) != 0)
    return Check::OtherGeneration;
  out = Claims{std::string(s), std::string(u), std::string(cert), expires, std::string(gen), std::string(nonce)};
  return Check::Ok;
}

std::string set_cookie(std::string_view name, std::string_view value, std::int64_t max_age, SameSite same_site) {
  std::string out(name);
  out += '=';
  out += value;
  out += "; Path=/; Max-Age=" + std::to_string(max_age < 0 ? 0 : max_age);
  out += "; HttpOnly; Secure; SameSite=";
  out += same_site == SameSite::Lax ? "Lax" : "Strict";
  return out;
}

std::string clear_cookie(std::string_view name, SameSite same_site) { return set_cookie(name, "", 0, same_site); }

std::string_view cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    auto semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    auto eq = pair.find('=');
    if (eq == std::string_view::npos || pair.substr(0, eq) != name) continue;
    std::string_view v = pair.substr(eq + 1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  }
  return {};
}

std::string sign_text(const Key& key, std::string_view text) { return b64url(mac(key, Kind::Return, text)); }

bool verify_text(const Key& key, std::string_view text, std::string_view signature) {
  const std::string expected = sign_text(key, text);
  return signature.size() == expected.size() &&
         CRYPTO_memcmp(expected.data(), signature.data(), expected.size()) == 0;
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("no random bytes from OpenSSL");
  return out;
}

std::string random_text(std::size_t n) { return b64url(random_bytes(n)); }

}  // namespace certgate::session
