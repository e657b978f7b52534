#pragma once
// Validates a presented certificate chain against one site's TrustStore (offline: local CRLs).
// The one place where OpenSSL's X509_V_ERR_* codes become certgate's ChainFault.
#include "auth/evidence.hpp"
#include "pki/trust_store.hpp"

#include <cstdint>
#include <optional>

namespace certgate::pki {

enum class Detail { Brief, Full };  // Full fills ChainReport::elements (CLI, explain)

// Fails closed: any error OpenSSL reports, or a usage mismatch, becomes a fault.
// `presented` holds what the client sent after the leaf (may be null).
// `at` replaces the current time (unix seconds) for `verify --at`.
auth::ChainReport verify_chain(const TrustStore& trust, X509* leaf, STACK_OF(X509) * presented,
                               std::optional<std::int64_t> at = std::nullopt,
                               Detail detail = Detail::Brief);

}  // namespace certgate::pki
