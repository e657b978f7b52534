#include "auth/decide.hpp"

namespace certgate::auth {

// spec: behaviour.md §1 step 7. Until certificate mapping is configured, a validated
// certificate proves trust but names no user, so the request runs as anonymous; with
// anonymous access off and no other method enabled nothing can accept it (401.2).
std::optional<Outcome> stage_authenticate(const LocationPolicy& policy, const RequestEvidence&) {
  if (policy.anonymous) return std::nullopt;
  return Outcome{.verdict = Verdict::Deny401_2_NoMethod,
                 .reason = "anonymous access is disabled for this location and no other "
                           "authentication method is enabled"};
}

}  // namespace certgate::auth
