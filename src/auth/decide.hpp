#pragma once
// decide(): the per-request authentication decision, in IIS order (spec: behaviour.md §1).
// Pure: no I/O, no clock, no OpenSSL. Fails closed: any doubt about a certificate is a deny.
#include "auth/evidence.hpp"
#include "auth/policy.hpp"
#include "auth/verdict.hpp"

#include <optional>

namespace certgate::auth {

Outcome decide(const LocationPolicy& policy, const RequestEvidence& evidence);

// The stages decide() runs, first deny wins. Exposed for table tests and `explain`.
std::optional<Outcome> stage_require(const LocationPolicy& policy, const RequestEvidence& ev);
// On demand (docs/on-demand.md): a certificate the location needs could not be asked for or
// obtained (no way to ask this client, a step-up ticket refused, no answer in time): 403.7.
Outcome certificate_unobtainable(std::string reason);
std::optional<Outcome> stage_chain(const LocationPolicy& policy, const RequestEvidence& ev);
// Always an outcome: who the caller is (Allow with user and method), or why nobody.
Outcome stage_authenticate(const LocationPolicy& policy, const RequestEvidence& ev);
// Certificate mapping alone (one-to-one, then many-to-one): a user, 403.12 or 403.16.
Outcome map_certificate(const SiteAuth& site, const CertFacts& cert);
std::optional<Outcome> stage_authorize(const LocationPolicy& policy, const Outcome& who);

}  // namespace certgate::auth
