#include "auth/decide.hpp"

namespace certgate::auth {
namespace {

Outcome allow(std::string user, std::string method, std::string rule = "") {
  return Outcome{.verdict = Verdict::Allow, .reason = "", .user = std::move(user),
                 .auth_method = std::move(method), .rule = std::move(rule)};
}

// spec: behaviour.md §4 two-factor (decision): the mapped certificate AND the password of the
// user it maps to.
Outcome second_factor(const Outcome& mapped, const RequestEvidence& ev) {
  if (ev.basic == PasswordCheck::None)
    return Outcome{.verdict = Verdict::Deny401_2_NoMethod,
                   .reason = "this location needs the password of user '" + mapped.user +
                             "' as well as the certificate (Basic authentication)",
                   .challenge = true};
  if (fold(ev.basic_user) != fold(mapped.user))
    return Outcome{.verdict = Verdict::Deny401_1_BadCredentials,
                   .reason = "the password was given for user '" + ev.basic_user +
                             "', but the certificate maps to '" + mapped.user + "'",
                   .challenge = true};
  if (ev.basic == PasswordCheck::Invalid)
    return Outcome{.verdict = Verdict::Deny401_1_BadCredentials,
                   .reason = "wrong password for user '" + mapped.user + "'",
                   .challenge = true};
  Outcome both = allow(mapped.user, "Certificate+Basic", mapped.rule);
  both.certificate = true;
  return both;
}

}  // namespace

// spec: behaviour.md §1 step 7.
Outcome stage_authenticate(const LocationPolicy& policy, const RequestEvidence& ev) {
  const SiteAuth* site = policy.site;
  // stage_chain has already refused any presented certificate that is not valid.
  const bool validated = ev.cert_presented && policy.ssl_flags.negotiates() && ev.chain &&
                         ev.chain->fault == ChainFault::None;
  const bool valid_cert = validated && (ev.cert || ev.mapped);
  if (valid_cert && site && site->mapping_enabled) {
    Outcome mapped = ev.mapped ? *ev.mapped : map_certificate(*site, *ev.cert);
    if (!mapped.allowed()) return mapped;
    if (policy.require_password) return second_factor(mapped, ev);
    mapped.certificate = true;
    return mapped;
  }
  if (policy.require_password)
    // spec: behaviour.md §5 "no certificate, required | 403.7": two-factor needs one.
    return Outcome{.verdict = Verdict::Deny403_7_NoCertificate,
                   .reason = "this location requires a mapped client certificate and the "
                             "password of its user; no certificate was presented"};
  // Without mapping the request runs as Basic or anonymous, but a certificate this location
  // validated still belongs to the request: IIS hands it to the application
  // (Request.ClientCertificate) and backends such as Tomcat's SSLValve do their own mapping.
  const auto vouched = [&](Outcome o) {
    o.certificate = validated;
    return o;
  };
  const bool basic = site && site->basic_enabled;
  if (basic && ev.basic == PasswordCheck::Valid) return vouched(allow(ev.basic_user, "Basic"));
  if (basic && ev.basic == PasswordCheck::Invalid)
    // spec: behaviour.md §5 "wrong password | 401.1 | 1326"
    return Outcome{.verdict = Verdict::Deny401_1_BadCredentials,
                   .reason = "wrong user name or password for '" + ev.basic_user + "'",
                   .challenge = true};
  if (policy.anonymous) return vouched(allow("", "Anonymous"));
  // spec: behaviour.md §5 "no authentication method accepted | 401.2 | 5"
  return Outcome{.verdict = Verdict::Deny401_2_NoMethod,
                 .reason = basic ? "this location needs a user name and password"
                                 : "anonymous access is disabled for this location and no "
                                   "other authentication method is enabled",
                 .challenge = basic};
}

}  // namespace certgate::auth
