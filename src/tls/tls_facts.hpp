#pragma once
// Everything a connection knows about its TLS state, in one place that can change
// mid-connection (renegotiation / post-handshake authentication will replace the peer chain).
#include "auth/evidence.hpp"
#include "auth/verdict.hpp"
#include "pki/openssl_ptr.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
  // The binding asks on demand (client_certificate = "on-demand"): a location that negotiates a
  // certificate asks for one once, when cert_requested is still false.
  bool on_demand = false;
  pki::X509Ptr leaf;           // null when the client sent no certificate
  // The validation-cache key of leaf + chain: computed at the handshake, or carried by a
  // resumed session (then the chain stays DER until someone needs it).
  std::string chain_key;
  std::string chain_der;       // a resumed session's chain, not decoded yet
  // What the client sent after the leaf (owned references); decoded on first use.
  STACK_OF(X509) * presented_chain();

  // What the pipeline (pipeline/evidence.hpp) found for this certificate on the connection's
  // site, kept for the connection's next requests. A certificate, once presented on a
  // connection, is not asked for again (behaviour.md §6), but every request is decided against
  // the configuration and revocation knowledge of its own time: the report is reused while the
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
  std::int64_t directory_until_ms = 0;  // runtime::Clock::steady_ms()

  pki::X509StackPtr chain;     // see presented_chain()

  // A reload replaced the connection's configuration: validation, mapping and directory
  // answers were made under the old one; the certificate itself and its facts stay.
  void forget_decisions();

  // Reads protocol, cipher and peer chain from a completed handshake.
  static TlsFacts from_handshake(SSL* ssl);
  // After post-handshake authentication or a renegotiation: the peer chain the client sent then
  // (or none), protocol and cipher anew; nothing decided for an earlier certificate survives.
  void take_late_certificate(SSL* ssl);
  // A certificate and its chain from files (leaf first), as `explain` and `verify` present it.
  static TlsFacts from_certificates(const std::vector<pki::X509Ptr>& certs, bool cert_requested);

  // The leaf's mapping facts (subject/issuer attributes, hashes, SANs), computed on first use.
  const auth::CertFacts& leaf_facts();
};

}  // namespace certgate::tls
