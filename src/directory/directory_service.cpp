#include "directory/directory_service.hpp"

#include "directory/ldap_connection.hpp"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace certgate::directory {

struct DirectoryService::Shared {
  const runtime::Clock* clock = nullptr;  // answers expire by its steady reading
  std::int64_t steady_ms() const { return clock->steady_ms(); }
  config::DirectoryMapping settings;
  auth::DirectoryPolicy policy;
  auth::DirectoryNaming naming;
  std::string site;

  mutable std::mutex mu;
  std::condition_variable wake;
  bool stopping = false;
  std::deque<auth::CertFacts> queue;
  std::unordered_map<std::string, std::vector<std::function<void(Mapped)>>> waiting;  // by der_sha256
  std::unordered_map<std::string, Mapped> cache;
  std::vector<LdapConnection*> connections;  // the workers', for interrupt() at stop
  bool down = false;  // last lookup found the directory unreachable (for one log line per change)
  std::string last_refusal;  // the last refusal logged

  void remember(const std::string& key, const Mapped& m) {
    if (settings.cache_entries == 0 || m.expires_ms <= steady_ms()) return;
    if (cache.size() >= settings.cache_entries) {
      const std::int64_t now = steady_ms();
      std::erase_if(cache, [&](const auto& kv) { return kv.second.expires_ms <= now; });
      // Still full of live answers: forget half rather than grow; they are only a cache.
      for (auto it = cache.begin(); cache.size() >= settings.cache_entries / 2 + 1 && it != cache.end();)
        it = cache.erase(it);
    }
    cache[key] = m;
  }

  void note_health(const auth::DirectoryAnswer& a) {
    const bool now_down = a.status == auth::DirectoryAnswer::Status::Unavailable;
    std::lock_guard lock(mu);
    if (now_down && !down)
      spdlog::error("site \"{}\": directory {} unreachable: {}; certificate logons that need it "
                    "get 500 until it answers again", site, a.server, a.error);
    else if (!now_down && down)
      spdlog::info("site \"{}\": directory {} answers again", site, a.server);
    // One line per distinct refusal (a wrong bind password would otherwise log every request).
    if (a.status == auth::DirectoryAnswer::Status::Failed && a.error != last_refusal)
      spdlog::error("site \"{}\": directory {} refused a lookup: {}", site, a.server, a.error);
    last_refusal = a.status == auth::DirectoryAnswer::Status::Failed ? a.error : "";
    down = now_down;
  }

  std::int64_t ttl_ms(const auth::Outcome& o) const {
    switch (auth::reuse_of(o)) {
      case auth::DirectoryReuse::Found: return std::int64_t{settings.cache_seconds} * 1000;
      case auth::DirectoryReuse::NotFound: return std::int64_t{settings.negative_cache_seconds} * 1000;
      case auth::DirectoryReuse::Never: break;  // outages and errors: ask again next time
    }
    return 0;
  }

  static void work(std::shared_ptr<Shared> self) {
    LdapConnection conn(self->settings);
    {
      std::lock_guard lock(self->mu);
      if (self->stopping) return;
      self->connections.push_back(&conn);
    }
    struct Leave {
      Shared& s;
      LdapConnection* c;
      ~Leave() {
        std::lock_guard lock(s.mu);
        std::erase(s.connections, c);
      }
    } leave{*self, &conn};
    for (;;) {
      auth::CertFacts cert;
      {
        std::unique_lock lock(self->mu);
        self->wake.wait(lock, [&] { return self->stopping || !self->queue.empty(); });
        if (self->stopping) return;
        cert = std::move(self->queue.front());
        self->queue.pop_front();
      }
      const auth::DirectoryAnswer answer = conn.lookup(auth::directory_plan(cert, self->policy));
      {
        // Interrupted by a stop: the answer is the interruption, and its waiters are gone.
        std::lock_guard lock(self->mu);
        if (self->stopping) return;
      }
      self->note_health(answer);
      auto outcome = std::make_shared<const auth::Outcome>(auth::judge_directory(cert, answer, self->naming));
      Mapped m{outcome, self->steady_ms() + self->ttl_ms(*outcome)};
      std::vector<std::function<void(Mapped)>> waiters;
      {
        std::lock_guard lock(self->mu);
        self->remember(cert.der_sha256, m);
        auto it = self->waiting.find(cert.der_sha256);
        if (it != self->waiting.end()) {
          waiters = std::move(it->second);
          self->waiting.erase(it);
        }
      }
      for (auto& w : waiters) w(m);
    }
  }
};

namespace {

// Returns the callbacks still waiting; the caller drops them outside the lock (dropping one
// may close a connection, and with it the last hold on this service).
std::unordered_map<std::string, std::vector<std::function<void(Mapped)>>> stop(DirectoryService::Shared& s) {
  std::lock_guard lock(s.mu);
  s.stopping = true;
  s.queue.clear();
  for (auto* c : s.connections) c->interrupt();
  s.wake.notify_all();
  auto waiting = std::move(s.waiting);
  s.waiting.clear();
  return waiting;
}

}  // namespace

DirectoryService::DirectoryService(config::DirectoryMapping settings, std::string site_name,
                                   const runtime::Clock& clock)
    : shared_(std::make_shared<Shared>()) {
  Shared& s = *shared_;
  s.clock = &clock;
  s.settings = std::move(settings);
  s.site = std::move(site_name);
  s.policy.account_filter = s.settings.account_filter;
  s.policy.mapping_attribute = s.settings.mapping_attribute;
  s.policy.sid_attribute = s.settings.sid_attribute;
  s.policy.upn_attribute = s.settings.upn_attribute;
  s.policy.allow_weak = s.settings.allow_weak;
  s.naming.domain = s.settings.domain;
  try {
    for (std::uint32_t i = 0; i < s.settings.pool_size; ++i) workers_.emplace_back(&Shared::work, shared_);
  } catch (...) {
    stop(s);  // the threads already started end on their own
    for (auto& t : workers_) t.detach();
    throw;
  }
}

DirectoryService::~DirectoryService() {
  auto waiting = stop(*shared_);
  for (auto& t : workers_)
    if (t.joinable()) t.detach();
}

void DirectoryService::shutdown() {
  auto keep = shared_;
  auto waiting = stop(*keep);
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  waiting.clear();
}

std::optional<Mapped> DirectoryService::cached(const auth::CertFacts& cert) const {
  std::lock_guard lock(shared_->mu);
  auto it = shared_->cache.find(cert.der_sha256);
  if (it == shared_->cache.end() || it->second.expires_ms <= shared_->steady_ms()) return std::nullopt;
  return it->second;
}

void DirectoryService::lookup(const auth::CertFacts& cert, std::function<void(Mapped)> done) {
  Shared& s = *shared_;
  std::optional<Mapped> answer;
  {
    std::lock_guard lock(s.mu);
    if (auto it = s.cache.find(cert.der_sha256); it != s.cache.end() && it->second.expires_ms > s.steady_ms()) {
      answer = it->second;
    } else if (auto w = s.waiting.find(cert.der_sha256); w != s.waiting.end()) {
      w->second.push_back(std::move(done));  // this certificate is being looked up: share it
      return;
    } else if (!s.stopping && s.queue.size() < s.settings.max_pending) {
      s.waiting[cert.der_sha256].push_back(std::move(done));
      s.queue.push_back(cert);
      s.wake.notify_one();
      return;
    }
  }
  if (!answer) {
    auth::DirectoryAnswer busy;
    busy.status = auth::DirectoryAnswer::Status::Busy;
    answer = Mapped{std::make_shared<const auth::Outcome>(auth::judge_directory(cert, busy, s.naming)), 0};
  }
  done(*answer);
}

const config::DirectoryMapping& DirectoryService::settings() const { return shared_->settings; }
const auth::DirectoryPolicy& DirectoryService::policy() const { return shared_->policy; }
const auth::DirectoryNaming& DirectoryService::naming() const { return shared_->naming; }

}  // namespace certgate::directory
