#include "auth/decide.hpp"

namespace certgate::auth {

Outcome decide(const LocationPolicy& policy, const RequestEvidence& ev) {
  // The order of this list is the IIS order of behaviour.md §1.
  if (auto o = stage_require(policy, ev)) return *o;
  if (auto o = stage_chain(policy, ev)) return *o;
  Outcome who = stage_authenticate(policy, ev);
  if (!who.allowed()) return who;
  if (auto o = stage_authorize(policy, who)) return *o;
  // soft_fail let a certificate of unknown revocation status through: served, and logged so.
  if (ev.chain && ev.chain->revocation_unknown_accepted && ev.cert_presented &&
      policy.ssl_flags.negotiates())
    who.verdict = Verdict::Allow200_RevocationUnknown;
  return who;
}

std::string_view to_string(ChainFault f) {
  switch (f) {
    case ChainFault::None: return "none";
    case ChainFault::Malformed: return "malformed";
    case ChainFault::UntrustedRoot: return "untrusted-root";
    case ChainFault::BadSignature: return "bad-signature";
    case ChainFault::WeakCrypto: return "weak-crypto";
    case ChainFault::WrongUsage: return "wrong-usage";
    case ChainFault::Constraint: return "constraint";
    case ChainFault::Expired: return "expired";
    case ChainFault::NotYetValid: return "not-yet-valid";
    case ChainFault::Revoked: return "revoked";
    case ChainFault::RevocationUnknown: return "revocation-unknown";
  }
  return "unknown";
}

}  // namespace certgate::auth
