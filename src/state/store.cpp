#include "state/store.hpp"

#include "state/redis_store.hpp"

#include <boost/asio/post.hpp>

#include <map>
#include <mutex>
#include <unordered_map>

namespace certgate::state {

std::string_view describe(Status s) {
  switch (s) {
    case Status::Done: return "done";
    case Status::AlreadyUsed: return "already used";
    case Status::Unknown: return "unknown or expired";
    case Status::Unavailable: return "store unavailable";
  }
  return "?";
}

namespace {

// One process: a map guarded by a mutex (event loops of several threads share it), bounded by
// max_entries (a full store refuses to issue rather than evict what is still to be consumed).
class MemoryStore final : public Store {
 public:
  MemoryStore(std::size_t max_entries, const runtime::Clock& clock) : max_(max_entries), clock_(clock) {}

  void issue(std::string_view ns, std::string_view key, std::string value, std::chrono::seconds ttl,
             boost::asio::any_io_executor ex, Handler done) override {
    Result r;
    {
      std::lock_guard lock(mu_);
      const std::int64_t now = clock_.steady_ms();
      prune(now);
      std::string k = full_key(ns, key);
      if (entries_.size() >= max_) {
        r.error = "the memory state store is full (" + std::to_string(max_) + " keys)";
      } else if (entries_.count(k)) {
        r.error = "the key exists already";
      } else {
        const std::int64_t until = now + ttl.count() * 1000;
        expiry_.emplace(until, k);
        entries_.emplace(std::move(k), Entry{std::move(value), until, false});
        r.status = Status::Done;
      }
    }
    boost::asio::post(ex, [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }

  void consume(std::string_view ns, std::string_view key, boost::asio::any_io_executor ex, Handler done) override {
    Result r;
    {
      std::lock_guard lock(mu_);
      prune(clock_.steady_ms());
      auto it = entries_.find(full_key(ns, key));
      if (it == entries_.end()) {
        r.status = Status::Unknown;
      } else if (it->second.used) {
        r.status = Status::AlreadyUsed;
      } else {
        it->second.used = true;
        r.status = Status::Done;
        r.value = std::move(it->second.value);
      }
    }
    boost::asio::post(ex, [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }

  std::string_view backend() const override { return "memory"; }

 private:
  struct Entry {
    std::string value;
    std::int64_t until;
    bool used;
  };
  static std::string full_key(std::string_view ns, std::string_view key) {
    std::string k(ns);
    k += ':';
    k += key;
    return k;
  }
  void prune(std::int64_t now) {
    while (!expiry_.empty() && expiry_.begin()->first <= now) {
      auto it = entries_.find(expiry_.begin()->second);
      if (it != entries_.end() && it->second.until <= now) entries_.erase(it);
      expiry_.erase(expiry_.begin());
    }
  }

  std::mutex mu_;
  std::size_t max_;
  const runtime::Clock& clock_;
  std::unordered_map<std::string, Entry> entries_;
  std::multimap<std::int64_t, std::string> expiry_;
};

}  // namespace

std::unique_ptr<Store> make_store(const config::StateSettings& s, const runtime::Clock& clock) {
  if (s.backend == config::StateBackend::Redis) return make_redis_store(s);
  return std::make_unique<MemoryStore>(s.max_entries, clock);
}

}  // namespace certgate::state
