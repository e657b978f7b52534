#include "auth/policy.hpp"

namespace certgate::auth {

std::optional<SslFlags> parse_ssl_flag(std::string_view w) {
  if (w == "None") return SslFlags{0};
  if (w == "Ssl") return SslFlags{kSsl};
  if (w == "SslNegotiateCert") return SslFlags{kSslNegotiateCert};
  if (w == "SslRequireCert") return SslFlags{kSslRequireCert};
  if (w == "Ssl128") return SslFlags{kSsl128};
  return std::nullopt;
}

std::string to_string(SslFlags f) {
  std::string out;
  auto add = [&](SslFlag flag, const char* name) {
    if (!f.has(flag)) return;
    if (!out.empty()) out += ',';
    out += name;
  };
  add(kSsl, "Ssl");
  add(kSslNegotiateCert, "SslNegotiateCert");
  add(kSslRequireCert, "SslRequireCert");
  add(kSsl128, "Ssl128");
  return out.empty() ? "None" : out;
}

}  // namespace certgate::auth
