// The cache: what a finished fetch brings is published (CRLs, OCSP answers, AIA issuers, the
// fetch state that paces retries), and the bounds are kept (entries, bytes, the state table).
// Both run on the store's thread; under the store's lock only O(1) updates and the erasure of
// victims chosen before taking it. Memory is freed and files are touched after it is released.
#include "pki/x509_text.hpp"
#include "revocation/store_impl.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace certgate::revocation {

std::int64_t Store::Impl::last_used(const std::string& url) const {
  auto it = crl_used.find(url);
  return it == crl_used.end() ? 0 : it->second.load(std::memory_order_relaxed);
}

void Store::Impl::record(const Need& n, bool ok, const std::string& result, const fetch::Result& r) {
  std::function<void(const FetchEvent&)> rec;
  {
    std::lock_guard lock(mu);
    rec = recorder;
  }
  if (rec)
    rec(FetchEvent{n.kind, n.url, n.subject ? pki::subject_text(n.subject.get()) : "", ok, result, r.elapsed_ms,
                   r.route.empty() ? "none (not started)" : r.route});
}

void Store::Impl::complete(const Need& n, const fetch::Result& r, bool transient) {
  const std::int64_t now = clock.unix_seconds();
  Taken t;
  if (r.ok) {
    switch (n.kind) {
      case Kind::Crl: t = take_crl(n, r.body, now); break;
      case Kind::Ocsp: t = take_ocsp(n, r.body, now); break;
      case Kind::CaIssuers: t = take_issuers(n, r.body, now); break;
    }
  } else {
    t.error = r.error;
  }
  const std::string& error = t.error;
  const auto kind = static_cast<std::size_t>(n.kind);
  // The CRL it would replace, read without `mu` (this thread alone changes the table), and the
  // comparisons that walk a CRL's entries done before taking it.
  std::shared_ptr<const CrlEntry> held;
  if (auto it = crls.find(n.url); it != crls.end()) held = it->second;
  std::int64_t rolled_back = 0;  // thisUpdate of the newer CRL kept instead of this one
  // A CRL older than the one held (a replayed or stale copy, still before its nextUpdate) could
  // only un-revoke: the newest verified CRL stays.
  if (t.crl && held && older_crl(*t.crl, *held)) {
    rolled_back = held->this_update;
    t.crl.reset();
  }
  const bool revokes_more = t.crl && adds_revocations(held.get(), t.crl->crl.get());
  const std::string key = n.key();
  const std::string state_key = t.about_subject ? n.subject_key() : key;
  std::vector<std::function<void()>> waiters;
  std::shared_ptr<const CrlEntry> replaced;  // freed after the lock: a large CRL takes a while
  std::int64_t failed_refresh_of = -1;       // fetched_at of the cached CRL a failed refresh leaves
  {
    std::lock_guard lock(mu);
    if (transient) {
      ++rejected_total;
    } else {
      UrlState& s = states[state_key];
      s.kind = n.kind;
      s.url = n.url;
      s.last_attempt = now;
      s.last_elapsed_ms = r.elapsed_ms;
      elapsed_ms_total[kind] += r.elapsed_ms;
      if (error.empty()) {
        ++s.ok;
        ++ok_total[kind];
        s.last_success = now;
        s.last_error.clear();
      } else {
        ++s.failed;
        ++error_total[kind];
        s.last_error = error;
      }
      if (!t.fresh) s.last_useless = now;
    }
    // Only what verified against a certificate chaining to an anchor gets here.
    auto old = crls.find(n.url);
    if (t.crl) {
      if (revokes_more) epoch.fetch_add(1, std::memory_order_release);
      crl_bytes += t.crl->bytes;
      if (old != crls.end()) {
        crl_bytes -= old->second->bytes;
        replaced = std::exchange(old->second, t.crl);
      } else {
        crls.emplace(n.url, t.crl);
      }
      crl_used.try_emplace(n.url, now);
    } else if (n.kind == Kind::Crl && old != crls.end() && !transient) {
      failed_refresh_of = old->second->fetched_at;
    }
    if (t.ocsp) {
      if (t.ocsp->status != OcspStatus::Good) epoch.fetch_add(1, std::memory_order_release);
      ocsps[key] = t.ocsp;
    }
    if (t.issuers) issuers[key] = t.issuers;
    auto it = in_flight.find(key);
    if (it != in_flight.end()) {
      waiters = std::move(it->second);
      in_flight.erase(it);
    }
  }
  if (t.crl) persist(n.url, r.body, t.crl->issuer.get(), now);
  else if (failed_refresh_of >= 0) write_meta(n.url, failed_refresh_of, now, error);
  // The outcome just written stays: the validation it wakes must see it, or it would fetch again.
  evict(state_key);
  if (rolled_back)
    spdlog::warn("revocation: CRL {} is older than the one held (thisUpdate {}): kept the newer one",
                 n.url, pki::utc_text(rolled_back));
  if (!error.empty()) spdlog::warn("revocation: {} {} failed: {}", to_string(n.kind), n.url, error);
  record(n, error.empty(), error.empty() ? t.verified : error, r);
  for (auto& w : waiters) w();
}

void Store::Impl::evict(const std::string& keep) {
  // Read without `mu`: only this thread changes the tables' structure (see store_impl.hpp).
  // AIA issuers are bounded on their own, oldest first, and never push out a CRL or an OCSP
  // answer: any chain can have one cached (a copy of a trusted CA certificate served at a URL
  // of its own), while CRLs and OCSP answers come from trusted paths only.
  const std::size_t max_issuers = std::max<std::size_t>(1, settings.max_entries / 8);
  std::vector<std::pair<std::int64_t, const std::string*>> old_issuers;
  if (issuers.size() > max_issuers) {
    for (const auto& [key, e] : issuers) old_issuers.emplace_back(e->fetched_at, &key);
    const auto drop = static_cast<std::ptrdiff_t>(issuers.size() - max_issuers);
    std::nth_element(old_issuers.begin(), old_issuers.begin() + drop, old_issuers.end());
    old_issuers.resize(static_cast<std::size_t>(drop));
  }
  // CRLs, least recently used first, until bytes and entries are within bounds.
  std::vector<std::string> old_crls;
  if (crl_bytes > settings.max_cache_bytes || crls.size() + ocsps.size() > settings.max_entries) {
    std::vector<std::tuple<std::int64_t, const std::string*, std::size_t>> by_use;
    for (const auto& [url, e] : crls) by_use.emplace_back(last_used(url), &url, e->bytes);
    std::sort(by_use.begin(), by_use.end());
    std::size_t bytes = crl_bytes, count = crls.size();
    for (const auto& [used, url, size] : by_use) {
      if (bytes <= settings.max_cache_bytes && count + ocsps.size() <= settings.max_entries) break;
      old_crls.push_back(*url);
      bytes -= size;
      --count;
    }
  }
  // Fetch outcomes, one per (URL, issuer): drop the oldest tenth once over the bound, so
  // certificates naming ever new URLs cannot grow the table (pacing of what is dropped is
  // forgotten, which the per-certificate and concurrency caps still bound). AIA outcomes go
  // first: any chain can add those, while CRL and OCSP ones come from trusted paths only.
  std::vector<std::string> old_states;
  if (states.size() > settings.max_entries) {
    std::vector<std::pair<std::pair<bool, std::int64_t>, const std::string*>> by_age;
    by_age.reserve(states.size());
    for (const auto& [k, st] : states)
      if (k != keep) by_age.push_back({{st.kind != Kind::CaIssuers, std::max(st.last_attempt, st.last_used)}, &k});
    const std::size_t drop = std::min(by_age.size(), states.size() - settings.max_entries * 9 / 10);
    std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(drop), by_age.end());
    for (std::size_t i = 0; i < drop; ++i) old_states.push_back(*by_age[i].second);
  }
  const bool ocsp_over = ocsps.size() > settings.max_entries;
  if (old_issuers.empty() && old_crls.empty() && old_states.empty() && !ocsp_over) return;

  std::vector<std::shared_ptr<const void>> freed;  // released after the lock
  std::unordered_map<std::string, std::shared_ptr<const OcspEntry>> dropped_ocsps;
  std::vector<std::string> issuer_keys;
  for (const auto& [at, key] : old_issuers) issuer_keys.push_back(*key);
  {
    std::lock_guard lock(mu);
    for (const auto& key : issuer_keys)
      if (auto it = issuers.find(key); it != issuers.end()) {
        freed.push_back(std::move(it->second));
        issuers.erase(it);
      }
    for (const auto& url : old_crls)
      if (auto it = crls.find(url); it != crls.end()) {
        crl_bytes -= it->second->bytes;
        freed.push_back(std::move(it->second));
        crls.erase(it);
        crl_used.erase(url);
      }
    // Answers are cheap to ask again; a bound matters more than their reuse.
    if (ocsp_over) dropped_ocsps.swap(ocsps);
    // A state a fetch in flight will write again stays (its waiters are keyed by it).
    for (const auto& key : old_states)
      if (!in_flight.count(key)) states.erase(key);
  }
  for (const auto& url : old_crls) unpersist(url);
}

}  // namespace certgate::revocation
