#pragma once
// The revocation store's insides, shared by the files that each hold one part of it:
//   store.cpp     the public face and the store's thread (its loop: tasks, fetches, refresh)
//   cache.cpp     entries, publishing a fetch's outcome, bounds and eviction
//   schedule.cpp  the in-flight table, queues, concurrency slots, background refresh
//   answers.cpp   CRL, OCSP and AIA answers parsed and verified; cache keys
//   persist.cpp   cache_dir: CRLs written, removed and loaded at start
//   metrics.cpp   the /metrics exposition
//
// Locking: `mu` guards the tables below. Request loops take it only for one lookup each (crl,
// ocsp, issuers, touch_crl: hash tables; may_fetch, state: a tree) or, in fetch(), one insert
// per need; cache keys are digested before it is taken. Every change to the tables' structure is
// made on the store's thread, so that thread may read them without `mu` — which is how scans
// (eviction, refresh) run without holding it; it takes `mu` only to apply what it decided.
// Disk I/O never happens under `mu`.
#include "fetch/fetcher.hpp"
#include "revocation/store.hpp"

#include <array>
#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace certgate::revocation {

std::shared_ptr<X509_CRL> share(X509_CRL* c);
std::shared_ptr<X509> share(X509* c);
X509_CRL* parse_crl(const std::string& body);
std::vector<std::shared_ptr<X509>> parse_certs(const std::string& body);
// OpenSSL sorts a CRL's entries on its first lookup; done on the store's thread, off the request
// loops, so every later lookup is a binary search.
void prepare(X509_CRL* crl);
std::int64_t time_of(const ASN1_TIME* t);
std::string sha256_hex(const std::string& data);
std::string named_issuer_id(X509* c);
// Whether `next` was issued before `held` (thisUpdate, then CRL number).
bool older_crl(const CrlEntry& next, const CrlEntry& held);
// Whether `next` revokes a serial that `prev` (the CRL it replaces, if any) did not.
bool adds_revocations(const CrlEntry* prev, X509_CRL* next);
// The DER OCSP request for `n`.
std::string ocsp_request(const Need& n);

// What parsing and verifying one answer found.
struct Taken {
  std::string error;
  bool fresh = false;          // brought something new (else the attempt paces the key)
  std::string verified;        // what was accepted, in words
  bool about_subject = false;  // the outcome depends on n.subject, not only on the URL
  std::shared_ptr<CrlEntry> crl;
  std::shared_ptr<OcspEntry> ocsp;
  std::shared_ptr<IssuersEntry> issuers;
};
Taken take_crl(const Need& n, const std::string& body, std::int64_t now);
Taken take_ocsp(const Need& n, const std::string& body, std::int64_t now);
Taken take_issuers(const Need& n, const std::string& body, std::int64_t now);

struct Store::Impl : std::enable_shared_from_this<Store::Impl> {
  Impl(StoreSettings s, const runtime::Clock& c);

  StoreSettings settings;
  const runtime::Clock& clock;
  std::atomic<std::uint64_t> epoch{0};  // see Store::epoch()

  // ---- the tables (see "Locking" above) ------------------------------------------------------
  mutable std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<const CrlEntry>> crls;  // by URL
  std::unordered_map<std::string, std::shared_ptr<const OcspEntry>> ocsps;  // by Need::key()
  std::unordered_map<std::string, std::shared_ptr<const IssuersEntry>> issuers;  // by Need::key()
  std::map<std::string, UrlState> states;  // by Need::key()
  // By URL, for cached CRLs only. The values are written by request loops (touch_crl, under
  // `mu`) while the store's thread reads them without it: atomics.
  std::unordered_map<std::string, std::atomic<std::int64_t>> crl_used;
  std::unordered_map<std::string, std::vector<std::function<void()>>> in_flight;
  // Waiting for one of max_concurrent_fetches. AIA fetches wait apart and take at most half the
  // slots: any chain can ask for them, so a flood of them must neither hold every slot nor fill
  // the queue that CRL and OCSP fetches (asked for trusted paths only) wait in.
  std::deque<Need> queued, queued_aia;
  std::size_t active = 0;      // fetches started and not finished
  std::size_t active_aia = 0;  // of which AIA
  std::function<void(const FetchEvent&)> recorder;
  std::size_t crl_bytes = 0;
  // Totals for /metrics by kind: never per URL, so the series stay few whatever certificates name.
  std::array<std::uint64_t, 3> ok_total{}, error_total{};
  std::array<std::int64_t, 3> elapsed_ms_total{};
  std::uint64_t rejected_total = 0;

  // ---- the store's thread (store.cpp) ----------------------------------------------------------
  fetch::Fetcher fetcher;
  std::mutex tasks_mu;
  std::vector<std::function<void()>> tasks;
  std::atomic<bool> stopping{false};
  std::int64_t next_refresh_ms = 0;
  std::thread thread;
  void run();                             // the loop
  void post(std::function<void()> task);  // from any thread: runs on the store's thread

  // ---- cache.cpp -----------------------------------------------------------------------------
  std::int64_t last_used(const std::string& url) const;
  // A fetch ended: its outcome recorded, what it brought published, its waiters resumed.
  // `transient`: it never reached the URL (too many waiting, no thread): nothing is recorded
  // against the URL, so a load spike never paces a later, legitimate use of it.
  void complete(const Need& n, const fetch::Result& r, bool transient = false);
  // Drops the least recently used entries until the bounds hold: decided without `mu`, applied
  // under it, files removed after; the fetch state `keep` stays. Store's thread (or the
  // constructor) only.
  void evict(const std::string& keep = {});
  void record(const Need& n, bool ok, const std::string& result, const fetch::Result& r);

  // ---- schedule.cpp ----------------------------------------------------------------------------
  void fetch(std::vector<Need> needs, std::function<void()> done);
  void pump();
  void start(Need n);
  void finish(const Need& n, const fetch::Result& r, bool transient);
  void refresh_due();
  std::size_t slots() const { return std::max<std::size_t>(1, settings.max_concurrent_fetches); }
  std::size_t aia_slots() const { return std::max<std::size_t>(1, slots() / 2); }

  // ---- persist.cpp -----------------------------------------------------------------------------
  std::filesystem::path crl_dir() const { return settings.cache_dir / "crl"; }
  void persist(const std::string& url, const std::string& der, X509* signer, std::int64_t fetched_at) const;
  // url, fetched_at, last attempt, last error: what `certgate crl status` shows after a restart.
  void write_meta(const std::string& url, std::int64_t fetched_at, std::int64_t attempt, const std::string& error) const;
  void unpersist(const std::string& url) const;
  void load();
};

}  // namespace certgate::revocation
