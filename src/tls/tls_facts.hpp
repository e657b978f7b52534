#pragma once
// Everything a connection knows about its TLS state, in one place that can change
// mid-connection (renegotiation / post-handshake authentication will replace the peer chain).
#include "auth/evidence.hpp"
#include "auth/verdict.hpp"
#include "pki/openssl_ptr.hpp"
#include "revocation/store.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace certgate::runtime { struct SiteRuntime; }

namespace certgate::tls {

// Chains checked for a connection, all loops (/metrics): validated in full, or taken from the
// site's validation cache. A connection's later requests reuse its own result and count nothing.
struct ChainChecks {
  std::atomic<std::uint64_t> validated{0}, cached{0};
};
ChainChecks& chain_checks();

struct TlsFacts {
  bool tls = false;
  std::string protocol;  // "TLSv1.3"
  std::string cipher;    // "TLS_AES_256_GCM_SHA384"
  int cipher_bits = 0;
  std::string sni;
  bool cert_requested = false;
  pki::X509Ptr leaf;           // null when the client sent no certificate
  // The validation-cache key of leaf + chain: computed at the handshake, or carried by a
  // resumed session (then the chain stays DER until someone needs it).
  std::string chain_key;
  std::string chain_der;       // a resumed session's chain, not decoded yet
  // What the client sent after the leaf (owned references); decoded on first use.
  STACK_OF(X509) * presented_chain();

  // The validation result against the connection's site. A certificate, once presented on a
  // connection, is not asked for again (behaviour.md §6), but every request is decided against
  // the configuration and revocation knowledge of its own time: the result is reused while the
  // revocation store's epoch is the one it was computed under and until `report_until` (the
  // validation cache's expiry), and forget_decisions() drops it when a reload changes the
  // connection's generation (docs/validation.md).
  std::optional<auth::ChainReport> report;
  std::uint64_t report_epoch = 0;
  std::int64_t report_until = 0;  // unix seconds
  std::unique_ptr<auth::CertFacts> facts;  // for mapping, computed on first use (heap: most connections never need it)
  // map_certificate() result for the connection's site (from the validation cache when it had one)
  std::optional<auth::Outcome> mapped;
  // The directory's answer for this certificate and site, reused until it expires.
  std::shared_ptr<const auth::Outcome> directory_mapped;
  std::int64_t directory_until_ms = 0;
  bool directory_once = false;  // an uncacheable answer (outage, busy): for the next request only

  pki::X509StackPtr chain;     // see presented_chain()

  // A reload replaced the connection's configuration: validation, mapping and directory
  // answers were made under the old one; the certificate itself and its facts stay.
  void forget_decisions();

  // Reads protocol, cipher and peer chain from a completed handshake.
  static TlsFacts from_handshake(SSL* ssl);

  // Validation result for `site`, computed on first use and again when the revocation epoch
  // moved or the result expired (CPU only: no I/O; usually a validation-cache hit). Null, with
  // `needs` filled, when online revocation must fetch something first: fetch, then ask again.
  const auth::ChainReport* report_for(const runtime::SiteRuntime& site, revocation::Store* store,
                                      std::vector<revocation::Need>& needs);
  int fetch_rounds = 0;  // validate-then-fetch rounds of this decision (bounded by kMaxFetchRounds)
  // The leaf's mapping facts (subject/issuer attributes, hashes, SANs), computed on first use.
  const auth::CertFacts& leaf_facts();
  // One-to-one / many-to-one result for `site`, computed once per configuration generation.
  const auth::Outcome& mapping_for(const runtime::SiteRuntime& site);
};

}  // namespace certgate::tls
