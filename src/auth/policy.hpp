#pragma once
// The effective per-location policy the core reads: site settings merged with locations.
#include "auth/mapping.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
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

// A site's authentication settings, compiled once per configuration generation.
struct SiteAuth {
  bool mapping_enabled = false;
  bool one_to_one_enabled = true;
  bool many_to_one_enabled = true;
  bool directory_enabled = false;  // [sites.directory_mapping]: asked after one-to-one
  OneToOneIndex one_to_one;
  ManyToOneTable many_to_one;
  bool basic_enabled = false;
  std::string realm = "certgate";
  std::unordered_map<std::string, std::vector<std::string>> groups;  // folded user → groups

  const std::vector<std::string>* groups_of(std::string_view user) const;
};

// Location authorization rules (IIS <authorization>). As in IIS, "*" = all users (anonymous
// included) and "?" = the anonymous user, so deny_users = ["?"] requires a logged-on user.
// User and group names compare case-insensitively.
struct AccessRules {
  std::vector<std::string> allow_users, deny_users, allow_groups, deny_groups;
  bool empty() const {
    return allow_users.empty() && deny_users.empty() && allow_groups.empty() &&
           deny_groups.empty();
  }
};

struct LocationPolicy {
  SslFlags ssl_flags;
  bool anonymous = true;
  bool require_password = false;  // two-factor: mapped certificate AND that user's password
  AccessRules access;
  const SiteAuth* site = nullptr;  // null: no mapping, no Basic
  bool token_login = false;  // a token-login cookie may stand for the certificate (docs/token-login.md)
};

}  // namespace certgate::auth
