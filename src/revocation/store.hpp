#pragma once
// The process-wide revocation cache: CRLs fetched from distribution points, OCSP answers, issuer
// certificates from AIA. Shared by every loop and site (and kept across reloads); one fetch in
// flight per URL however many requests wait for it; fetches and parsing run on the store's own
// thread, never on a request loop; CRLs refreshed in the background before nextUpdate and
// persisted in cache_dir, so a restart in cache-only mode still has them. Bounded in entries and
// bytes, in memory and on disk.
#include "config/config.hpp"
#include "pki/chain_verify.hpp"
#include "pki/openssl_ptr.hpp"
#include "runtime/clock.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace certgate::revocation {

enum class Kind : std::uint8_t { Crl, Ocsp, CaIssuers };
std::string_view to_string(Kind k);

struct StoreSettings {
  std::filesystem::path cache_dir;        // "" = memory only
  std::size_t max_fetch_bytes = 10 << 20; // one response
  int max_redirects = 3;
  std::size_t max_entries = 2000;         // CRLs + OCSP answers; AIA answers: an eighth of it
  std::size_t max_cache_bytes = 256u << 20;  // CRL bytes, in memory and on disk
  std::size_t max_urls_per_certificate = 4;  // per kind: distribution points, OCSP, caIssuers
  std::size_t max_concurrent_fetches = 16;   // in flight at once; the rest wait their turn
  config::FetchSettings fetch;               // proxy, directory hosts for host-less ldap:///
};

// Fetches beyond this many waiting (max_concurrent_fetches × this) fail at once.
inline constexpr std::size_t kQueuedPerConcurrent = 64;
// Certificates of one AIA answer considered as issuers (PKCS#7 bundles of real PKIs hold dozens).
inline constexpr std::size_t kAiaCertificates = 256;
// An AIA answer's size cap (or max_fetch_bytes when smaller).
inline constexpr std::size_t kAiaMaxBytes = 1 << 20;
// Cached CRLs given their own /metrics series (the most recently used): a bounded label set.
inline constexpr std::size_t kMetricsUrlSeries = 64;

// The [server] keys that shape the cache (cache_dir, max_fetch_bytes, ...).
StoreSettings store_settings(const config::ServerSettings& server);

// One thing a validation lacks.
struct Need {
  Kind kind = Kind::Crl;
  std::string url;
  std::shared_ptr<X509> subject;  // the certificate whose status or issuer is wanted
  std::shared_ptr<X509> issuer;   // its issuer: checks a CRL's signature, names the OCSP CertID
  bool indirect = false;          // CRL: signed by someone else (cRLIssuer, delta CRL points)
  // The requesting site's anchors: an indirect CRL is kept only when signed by a certificate
  // that chains to them, AIA issuers only when they issue `subject` and chain to them.
  std::shared_ptr<const pki::AnchorCheck> anchors;
  std::uint32_t timeout_ms = 15000;
  // What the cache, the in-flight table and retry pacing are keyed by: the URL with the issuer
  // it is asked for (so one chain's failure never paces another issuer's use of the URL).
  std::string key() const;
  // AIA: an answer that holds no issuer of `subject` says nothing about other certificates
  // naming the same URL and issuer (their AKI or signature algorithm may differ), so that
  // outcome paces this key only.
  std::string subject_key() const;
};

struct CrlEntry {
  std::shared_ptr<X509_CRL> crl;
  std::shared_ptr<X509> issuer;  // the certificate whose key verified it (refreshes are checked against it)
  bool indirect = false;
  std::int64_t fetched_at = 0, this_update = 0, next_update = 0;  // unix seconds
  std::string issuer_name;
  std::size_t bytes = 0;
};

enum class OcspStatus : std::uint8_t { Good, Revoked, Unknown };
struct OcspEntry {
  OcspStatus status = OcspStatus::Unknown;
  std::int64_t revoked_at = 0;
  std::int64_t fetched_at = 0, this_update = 0, next_update = 0;
  std::string url;
};

struct IssuersEntry {
  std::vector<std::shared_ptr<X509>> certs;
  std::int64_t fetched_at = 0;
};

// What became of the last fetch of a URL (or OCSP query): for reasons, metrics and `crl status`.
struct UrlState {
  Kind kind = Kind::Crl;
  std::string url;
  std::uint64_t ok = 0, failed = 0;
  std::int64_t last_attempt = 0, last_success = 0;
  std::int64_t last_useless = 0;  // last attempt that brought nothing fresh (retry pacing)
  std::int64_t last_used = 0;     // last validation that needed it (refresh only what is used)
  std::string last_error;
  std::int64_t last_elapsed_ms = 0;
};

// A fetch as it happened (`certgate verify --urlfetch` prints these).
struct FetchEvent {
  Kind kind;
  std::string url;
  std::string subject;  // the certificate it was for
  bool ok;
  std::string result;   // "Verified" detail or the failure
  std::int64_t elapsed_ms;
  std::string route;    // "direct", "via proxy …", "via ldap host …"
};

class Store {
 public:
  // Every time the store reads (fetch times, freshness, pacing, refresh) comes from `clock`.
  explicit Store(StoreSettings settings, const runtime::Clock& clock = runtime::system_clock());
  ~Store();  // shutdown()

  // The server's stop, once its loops have stopped: ends the store's thread (fetches in
  // progress are abandoned, not waited for) and drops every callback still waiting for a fetch
  // (they hold connections that belong to the loops). Fetches asked for afterwards never
  // complete. Idempotent.
  void shutdown();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Lookups, from any thread. Entries are immutable once published.
  std::shared_ptr<const CrlEntry> crl(const std::string& url) const;
  std::shared_ptr<const OcspEntry> ocsp(const std::string& key) const;
  // The issuers fetched from `url` for certificates naming the issuer `subject` names (name and
  // AKI): what one bundle answered for one issuer says nothing about another's.
  std::shared_ptr<const IssuersEntry> issuers(const std::string& url, X509* subject) const;
  // Every cached AIA certificate (CLI `verify --urlfetch`).
  std::vector<std::shared_ptr<X509>> issuer_certificates() const;
  std::optional<UrlState> state(const std::string& key) const;
  // Whether `key` may be fetched again now: never fetched, or the last attempt that brought
  // nothing fresh is older than `retry_seconds`.
  bool may_fetch(const std::string& key, std::int64_t now, std::int64_t retry_seconds) const;
  // A validation used the cached CRL of `url` (only CRLs in use are refreshed and kept).
  void touch_crl(const std::string& url, std::int64_t now);
  const StoreSettings& settings() const;
  const runtime::Clock& clock() const;

  // Fetches every need (joining fetches already in flight); `done` runs on the store's thread
  // once all have finished, successfully or not.
  void fetch(std::vector<Need> needs, std::function<void()> done);
  // The same, waiting (for the CLI).
  void fetch_and_wait(std::vector<Need> needs);

  // Records every fetch as it completes (CLI `verify --urlfetch`).
  void set_recorder(std::function<void(const FetchEvent&)> recorder);

  // Prometheus text exposition of the fetch counters and cache ages.
  std::string metrics() const;
  // The cached OCSP answers (the admin status page groups them by responder).
  std::vector<std::shared_ptr<const OcspEntry>> ocsp_answers() const;
  std::vector<UrlState> states() const;
  std::vector<std::pair<std::string, std::shared_ptr<const CrlEntry>>> crls() const;

  // Moves whenever the store takes in something that may revoke a certificate a validation found
  // good before: a CRL listing a serial its predecessor for that URL did not (or the first CRL
  // of a URL), an OCSP answer other than "good". Validation results remember the epoch they were
  // computed under and are checked again once it moved (pki/validation_cache.hpp,
  // tls/tls_facts.hpp). One atomic load: cheap enough for every request.
  std::uint64_t epoch() const;

  // Refetches every cached CRL now (CLI `crl fetch`); waits.
  void refresh_all_and_wait(std::uint32_t timeout_ms);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// A Prometheus label value: `\\`, `"` and line feed escaped as the text format has them, other
// control characters (carriage return included) percent-encoded, as in a URL.
std::string metrics_label(std::string_view value);

}  // namespace certgate::revocation
