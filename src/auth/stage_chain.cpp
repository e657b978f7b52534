#include "auth/decide.hpp"

namespace certgate::auth {

// spec: behaviour.md §1 step 6: a presented certificate that fails validation is final; it
// never falls back to another authentication method.
// A location without SslNegotiateCert ignores a certificate the binding happened to receive,
// as IIS does.
std::optional<Outcome> stage_chain(const LocationPolicy& policy, const RequestEvidence& ev) {
  if (!ev.cert_presented || !policy.ssl_flags.negotiates()) return std::nullopt;
  if (ev.chain == nullptr)  // the shell must validate every presented certificate; fail closed
    return Outcome{.verdict = Verdict::Deny403_16_Invalid,
                   .reason = "the certificate was not validated (internal error)"};
  const ChainReport& r = *ev.chain;
  auto deny = [&](Verdict v) { return Outcome{.verdict = v, .reason = r.reason}; };
  switch (r.fault) {
    case ChainFault::None: return std::nullopt;
    // spec: behaviour.md §5 "expired / not yet valid | 403.17 | 0x800B0101"
    case ChainFault::Expired:
    case ChainFault::NotYetValid: return deny(Verdict::Deny403_17_Expired);
    // spec: behaviour.md §5 "revoked | 403.13 | 0x80092010"
    case ChainFault::Revoked: return deny(Verdict::Deny403_13_Revoked);
    // spec: behaviour.md §5 "revocation status unavailable | 403.13 | 0x80092013"
    case ChainFault::RevocationUnknown: return deny(Verdict::Deny403_13_RevocationUnknown);
    // spec: behaviour.md §5 "untrusted root / issuer not trusted | 403.16 | 0x800B0109"
    case ChainFault::UntrustedRoot: return deny(Verdict::Deny403_16_UntrustedRoot);
    // spec: behaviour.md §5 "wrong usage (EKU) | 403.16 | 0x800B0110"
    case ChainFault::WrongUsage: return deny(Verdict::Deny403_16_WrongUsage);
    // spec: behaviour.md §5 "bad signature / malformed / other | 403.16 | 0x80096004".
    // A weak key or digest is a signature that cannot be relied on: Windows reports it the same
    // way (CERT_TRUST_IS_NOT_SIGNATURE_VALID with CERT_TRUST_HAS_WEAK_SIGNATURE →
    // TRUST_E_CERT_SIGNATURE), so the log line matches what IIS writes.
    case ChainFault::Malformed:
    case ChainFault::BadSignature:
    case ChainFault::WeakCrypto:
    case ChainFault::Constraint: return deny(Verdict::Deny403_16_Invalid);
  }
  return deny(Verdict::Deny403_16_Invalid);
}

}  // namespace certgate::auth
