// Fetch scheduling: one fetch in flight per key however many validations wait for it, at most
// max_concurrent_fetches running (AIA: half of them, in a queue of its own), bounded queues,
// and the background refresh of CRLs still in use before their nextUpdate.
#include "revocation/store_impl.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace certgate::revocation {

void Store::Impl::fetch(std::vector<Need> needs, std::function<void()> done) {
  if (needs.empty()) return post(std::move(done));
  auto remaining = std::make_shared<std::atomic<std::size_t>>(needs.size());
  auto one_done = [remaining, done = std::move(done)]() {
    if (remaining->fetch_sub(1) == 1) done();
  };
  std::vector<Need> refused;
  std::vector<std::string> keys;  // made before the lock: they digest certificates
  keys.reserve(needs.size());
  for (const auto& n : needs) keys.push_back(n.key());
  {
    std::lock_guard lock(mu);
    const std::size_t max_queued = slots() * kQueuedPerConcurrent;
    for (std::size_t i = 0; i < needs.size(); ++i) {
      auto& n = needs[i];
      auto [it, fresh] = in_flight.try_emplace(std::move(keys[i]));
      it->second.push_back(one_done);
      if (!fresh) continue;
      auto& line = n.kind == Kind::CaIssuers ? queued_aia : queued;
      if (line.size() >= max_queued) refused.push_back(std::move(n));
      else line.push_back(std::move(n));
    }
  }
  auto self = shared_from_this();
  for (auto& n : refused)
    post([self, n = std::move(n)] {
      fetch::Result r;
      r.error = "too many revocation fetches waiting";
      self->complete(n, r, true);
    });
  post([self] { self->pump(); });
}

// Starts queued fetches while fewer than max_concurrent_fetches run. On the store's thread.
// CRL and OCSP fetches first; AIA ones only while fewer than aia_slots() of them run.
void Store::Impl::pump() {
  for (;;) {
    Need n;
    {
      std::lock_guard lock(mu);
      if (active >= slots()) return;
      if (!queued.empty()) {
        n = std::move(queued.front());
        queued.pop_front();
      } else if (!queued_aia.empty() && active_aia < aia_slots()) {
        n = std::move(queued_aia.front());
        queued_aia.pop_front();
        ++active_aia;
      } else {
        return;
      }
      ++active;
    }
    start(std::move(n));
  }
}

// A started fetch ended (once, whatever happened): frees its slot and starts the next.
void Store::Impl::finish(const Need& n, const fetch::Result& r, bool transient) {
  {
    std::lock_guard lock(mu);
    --active;
    if (n.kind == Kind::CaIssuers) --active_aia;
  }
  try {
    complete(n, r, transient);
  } catch (const std::exception& e) {
    // Out of memory while publishing: the waiters are resumed all the same (they decide with
    // what the store holds), or they and every later validation needing the key would wait on
    // an in-flight entry that nothing completes.
    spdlog::error("revocation: {} {}: the fetch's outcome could not be kept: {}", to_string(n.kind), n.url, e.what());
    std::vector<std::function<void()>> waiters;
    const std::string key = n.key();  // digested before the lock, as everywhere
    {
      std::lock_guard lock(mu);
      if (auto it = in_flight.find(key); it != in_flight.end()) {
        waiters = std::move(it->second);
        in_flight.erase(it);
      }
    }
    for (auto& w : waiters) w();
  }
  pump();
}

void Store::Impl::start(Need n) {
  auto self = shared_from_this();
  fetch::Request req;
  req.url = n.url;
  req.timeout_ms = n.timeout_ms;
  // Issuer certificates are small, and any chain can make the server ask for them: their
  // answers get a smaller cap than CRLs (parsing a PKCS#7 costs time in its size).
  req.max_bytes = n.kind == Kind::CaIssuers ? std::min(settings.max_fetch_bytes, kAiaMaxBytes) : settings.max_fetch_bytes;
  req.max_redirects = settings.max_redirects;
  req.ldap_value = n.kind == Kind::CaIssuers ? fetch::LdapValue::Certificate : fetch::LdapValue::Crl;
  // Running out of memory is an error for this fetch, never the process's end.
  try {
    if (n.kind == Kind::Ocsp) {
      req.method = "POST";
      req.content_type = "application/ocsp-request";
      req.body = ocsp_request(n);
    }
    fetcher.start(std::move(req), [self, n](fetch::Result r) { self->finish(n, r, false); });
  } catch (const std::exception& e) {
    fetch::Result r;
    r.error = std::string("cannot start the fetch: ") + e.what();
    post([self, n = std::move(n), r = std::move(r)] { self->finish(n, r, true); });
  }
}

// CRLs still in use are fetched again shortly before their nextUpdate (a tenth of their
// validity, at most five minutes), so requests never wait for a CRL that simply aged. The scan
// reads the tables without the lock (store's thread); `mu` is taken per candidate, for the
// in-flight table that request loops also write.
void Store::Impl::refresh_due() {
  const std::int64_t now = clock.unix_seconds();
  std::vector<Need> due;
  for (const auto& [url, e] : crls) {
    // Without the key that verified it (persisted by an older version) a refresh could not
    // be checked: the next validation that needs the CRL fetches it with its issuer.
    if (!e->issuer || now - last_used(url) > 3600) continue;
    const std::int64_t lead = std::min<std::int64_t>(300, std::max<std::int64_t>(1, (e->next_update - e->this_update) / 10));
    if (e->next_update == 0 || now < e->next_update - lead) continue;
    Need n;
    n.kind = Kind::Crl;
    n.url = url;
    n.issuer = e->issuer;
    const std::string key = n.key();
    const auto st = states.find(key);
    if (st != states.end() && now - st->second.last_useless < 60) continue;
    {
      std::lock_guard lock(mu);
      if (in_flight.count(key)) continue;
    }
    due.push_back(std::move(n));
  }
  if (!due.empty()) fetch(std::move(due), [] {});
}

}  // namespace certgate::revocation
