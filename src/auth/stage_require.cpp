#include "auth/decide.hpp"

#include <string>

namespace certgate::auth {

std::optional<Outcome> stage_require(const LocationPolicy& policy, const RequestEvidence& ev) {
  const SslFlags f = policy.ssl_flags;
  // spec: behaviour.md §1 step 2 "403.4": Ssl128 implies Ssl.
  if ((f.has(kSsl) || f.has(kSsl128)) && !ev.over_tls)
    return Outcome{.verdict = Verdict::Deny403_4_SslRequired,
                   .reason = "this location requires HTTPS; the request came over plain HTTP"};
  // spec: behaviour.md §1 step 3 "403.5".
  if (f.has(kSsl128) && ev.over_tls && ev.cipher_bits < 128)
    return Outcome{.verdict = Verdict::Deny403_5_Ssl128Required,
                   .reason = "this location requires a cipher of at least 128 bits; the "
                             "connection uses " + std::to_string(ev.cipher_bits) + " bits"};
  // spec: behaviour.md §1 step 5 "403.7".
  if (f.has(kSslRequireCert) && !ev.cert_presented)
    return Outcome{.verdict = Verdict::Deny403_7_NoCertificate,
                   .reason = ev.cert_requested
                                 ? "this location requires a client certificate and the "
                                   "client did not send one"
                                 : "this location requires a client certificate but the "
                                   "connection never asked for one"};
  return std::nullopt;
}

Outcome certificate_unobtainable(std::string reason) {
  return Outcome{.verdict = Verdict::Deny403_7_NoCertificate, .reason = std::move(reason)};
}

}  // namespace certgate::auth
