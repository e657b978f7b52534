// The store's public face and its thread: one loop that runs posted tasks, drives libcurl's
// transfers (fetch::Fetcher) and starts the background refresh every 15 seconds.
#include "revocation/store.hpp"

#include "revocation/store_impl.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>

namespace certgate::revocation {

namespace {
constexpr std::int64_t kRefreshEveryMs = 15000;
}  // namespace

StoreSettings store_settings(const config::ServerSettings& server) {
  StoreSettings s;
  s.cache_dir = server.cache_dir;
  s.max_fetch_bytes = server.max_fetch_bytes;
  s.max_redirects = server.max_fetch_redirects;
  s.max_cache_bytes = server.revocation_cache_bytes;
  s.max_entries = server.revocation_cache_entries;
  s.max_urls_per_certificate = server.revocation_urls_per_certificate;
  s.max_concurrent_fetches = server.revocation_concurrent_fetches;
  s.fetch = server.fetch;
  return s;
}

Store::Impl::Impl(StoreSettings s, const runtime::Clock& c)
    : settings(std::move(s)), clock(c), fetcher(settings.fetch, c) {}

void Store::Impl::post(std::function<void()> task) {
  {
    std::lock_guard lock(tasks_mu);
    tasks.push_back(std::move(task));
  }
  fetcher.wake();
}

void Store::Impl::run() {
  next_refresh_ms = clock.steady_ms() + kRefreshEveryMs;
  while (!stopping.load(std::memory_order_acquire)) {
    std::vector<std::function<void()>> now;
    {
      std::lock_guard lock(tasks_mu);
      now.swap(tasks);
    }
    // A task or fetch that throws (memory) costs that fetch, not the process: the loop goes on,
    // and the other tasks taken with it still run (one may be a waiter's resumption).
    for (auto& task : now) {
      try {
        task();
      } catch (const std::exception& e) {
        spdlog::error("revocation: a task failed inside the fetch loop: {}", e.what());
      }
    }
    try {
      if (clock.steady_ms() >= next_refresh_ms) {
        next_refresh_ms = clock.steady_ms() + kRefreshEveryMs;
        refresh_due();
      }
      // At most a second's wait, so that a clock a test moves by hand is looked at again.
      const std::int64_t wait = std::clamp<std::int64_t>(next_refresh_ms - clock.steady_ms(), 0, 1000);
      fetcher.run_once(static_cast<int>(wait));
    } catch (const std::exception& e) {
      spdlog::error("revocation: a fetch failed inside the fetch loop: {}", e.what());
    }
  }
}

Store::Store(StoreSettings settings, const runtime::Clock& clock)
    : impl_(std::make_shared<Impl>(std::move(settings), clock)) {
  impl_->load();
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

Store::~Store() { shutdown(); }

void Store::shutdown() {
  impl_->stopping.store(true, std::memory_order_release);
  impl_->fetcher.wake();
  if (impl_->thread.joinable()) impl_->thread.join();
  // Nothing completes a fetch any more: its waiters would otherwise live as long as the
  // abandoned fetch's handlers, which hold the store (and outlive the loops).
  std::unordered_map<std::string, std::vector<std::function<void()>>> waiting;
  {
    std::lock_guard lock(impl_->mu);
    waiting.swap(impl_->in_flight);
    impl_->queued.clear();
    impl_->queued_aia.clear();
  }
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(impl_->tasks_mu);
    tasks.swap(impl_->tasks);
  }
}

std::shared_ptr<const CrlEntry> Store::crl(const std::string& url) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->crls.find(url);
  return it == impl_->crls.end() ? nullptr : it->second;
}

std::shared_ptr<const OcspEntry> Store::ocsp(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->ocsps.find(key);
  return it == impl_->ocsps.end() ? nullptr : it->second;
}

std::shared_ptr<const IssuersEntry> Store::issuers(const std::string& url, X509* subject) const {
  const std::string key = "aia " + url + " " + named_issuer_id(subject);
  std::lock_guard lock(impl_->mu);
  auto it = impl_->issuers.find(key);
  return it == impl_->issuers.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<X509>> Store::issuer_certificates() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::shared_ptr<X509>> out;
  for (const auto& [key, e] : impl_->issuers) out.insert(out.end(), e->certs.begin(), e->certs.end());
  return out;
}

std::optional<UrlState> Store::state(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->states.find(key);
  if (it == impl_->states.end()) return std::nullopt;
  return it->second;
}

bool Store::may_fetch(const std::string& key, std::int64_t now, std::int64_t retry_seconds) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->states.find(key);
  return it == impl_->states.end() || it->second.last_useless == 0 ||
         now - it->second.last_useless >= retry_seconds;
}

std::uint64_t Store::epoch() const { return impl_->epoch.load(std::memory_order_acquire); }

void Store::touch_crl(const std::string& url, std::int64_t now) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->crl_used.find(url);
  if (it != impl_->crl_used.end()) it->second.store(now, std::memory_order_relaxed);
}

const StoreSettings& Store::settings() const { return impl_->settings; }

const runtime::Clock& Store::clock() const { return impl_->clock; }

void Store::fetch(std::vector<Need> needs, std::function<void()> done) {
  impl_->fetch(std::move(needs), std::move(done));
}

void Store::fetch_and_wait(std::vector<Need> needs) {
  std::promise<void> finished;
  auto f = finished.get_future();
  impl_->fetch(std::move(needs), [&finished] { finished.set_value(); });
  f.wait();
}

void Store::set_recorder(std::function<void(const FetchEvent&)> recorder) {
  std::lock_guard lock(impl_->mu);
  impl_->recorder = std::move(recorder);
}

std::vector<UrlState> Store::states() const {
  std::lock_guard lock(impl_->mu);
  std::vector<UrlState> out;
  for (const auto& [k, s] : impl_->states) out.push_back(s);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<const CrlEntry>>> Store::crls() const {
  std::vector<std::pair<std::string, std::shared_ptr<const CrlEntry>>> out;
  {
    std::lock_guard lock(impl_->mu);
    out.assign(impl_->crls.begin(), impl_->crls.end());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

void Store::refresh_all_and_wait(std::uint32_t timeout_ms) {
  std::vector<Need> needs;
  for (const auto& [url, e] : crls()) {
    Need n;
    n.kind = Kind::Crl;
    n.url = url;
    n.issuer = e->issuer;  // null (persisted by an older version): refused unless verified
    n.timeout_ms = timeout_ms;
    needs.push_back(std::move(n));
  }
  fetch_and_wait(std::move(needs));
}

}  // namespace certgate::revocation
