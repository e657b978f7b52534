#pragma once
// The effective per-location policy the core reads: site settings merged with locations.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::auth {

// IIS access/@sslFlags. Values match IIS's numeric encoding so imports can pass numbers.
enum SslFlag : std::uint16_t {
  kSsl = 8,
  kSslNegotiateCert = 32,
  kSslRequireCert = 64,
  kSsl128 = 256,
};

struct SslFlags {
  std::uint16_t bits = 0;
  bool has(SslFlag f) const { return (bits & f) != 0; }
  // SslRequireCert alone implies SslNegotiateCert (spec: behaviour.md §1 step 4, decision).
  bool negotiates() const { return has(kSslNegotiateCert) || has(kSslRequireCert); }
  bool operator==(const SslFlags&) const = default;
};

// Parses one IIS flag word ("Ssl", "SslNegotiateCert", "SslRequireCert", "Ssl128", "None").
std::optional<SslFlags> parse_ssl_flag(std::string_view word);
std::string to_string(SslFlags flags);

struct LocationPolicy {
  SslFlags ssl_flags;
  bool anonymous = true;
};

}  // namespace certgate::auth
