#pragma once
// Validation with the revocation store: online mode fetches what a chain's certificates name
// (CDP CRLs, OCSP at AIA, missing issuers at AIA caIssuers); cache-only mode uses what the store
// already holds (fetched earlier, or persisted by a previous run) besides the local CRL files.
// One call validates once and says what is missing; the caller fetches it (asynchronously, off
// the request loop) and calls again. Fetch attempts are paced per URL, so the loop ends.
#include "auth/evidence.hpp"
#include "pki/chain_verify.hpp"
#include "pki/trust_store.hpp"
#include "revocation/store.hpp"

#include <cstdint>
#include <optional>
#include <vector>

namespace certgate::revocation {

struct Validation {
  auth::ChainReport report;
  std::vector<Need> needs;     // fetch these, then validate again
  std::int64_t valid_until = INT64_MAX;  // earliest nextUpdate / freshness limit of what was used
  bool soft_failed = false;    // revocation unknown, accepted because of soft_fail
};

// `store` may be null (no cache at all: local CRLs only). `allow_fetch` false turns online mode
// into a last pass that decides with what is there.
Validation validate(const pki::TrustStore& trust, Store* store, X509* leaf, STACK_OF(X509) * presented,
                    bool allow_fetch, std::optional<std::int64_t> at = std::nullopt,
                    pki::Detail detail = pki::Detail::Brief);

// How many validate-then-fetch rounds a request may take before deciding with what it has.
inline constexpr int kMaxFetchRounds = 6;

}  // namespace certgate::revocation
