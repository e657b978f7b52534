#include "tls/session_cache.hpp"

#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace certgate::tls {
namespace {

class SessionCache {
 public:
  void set_limit(std::size_t max) {
    std::lock_guard lock(mu_);
    max_ = std::max(max_, max);  // the largest any context asked for
  }

  void add(SSL_SESSION* s) {
    std::string id = id_of(s);
    if (id.empty()) return;
    SSL_SESSION_up_ref(s);
    std::lock_guard lock(mu_);
    if (auto it = index_.find(id); it != index_.end()) drop(it);
    order_.push_front({id, s});
    index_[id] = order_.begin();
    while (index_.size() > max_) drop(index_.find(order_.back().first));
  }

  SSL_SESSION* get(const unsigned char* data, int len) {
    std::string id(reinterpret_cast<const char*>(data), static_cast<std::size_t>(len));
    std::lock_guard lock(mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return nullptr;
    SSL_SESSION* s = it->second->second;
    const std::int64_t now = static_cast<std::int64_t>(time(nullptr));
    if (now > static_cast<std::int64_t>(SSL_SESSION_get_time(s)) + SSL_SESSION_get_timeout(s)) {
      drop(it);
      return nullptr;
    }
    SSL_SESSION_up_ref(s);  // the caller's reference (copy = 0 tells OpenSSL it owns it)
    return s;
  }

  void remove(SSL_SESSION* s) {
    std::string id = id_of(s);
    std::lock_guard lock(mu_);
    if (auto it = index_.find(id); it != index_.end() && it->second->second == s) drop(it);
  }

 private:
  using Entry = std::pair<std::string, SSL_SESSION*>;
  std::mutex mu_;
  std::list<Entry> order_;  // newest first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  std::size_t max_ = 1;

  static std::string id_of(SSL_SESSION* s) {
    unsigned int len = 0;
    const unsigned char* id = SSL_SESSION_get_id(s, &len);
    return std::string(reinterpret_cast<const char*>(id), len);
  }
  void drop(std::unordered_map<std::string, std::list<Entry>::iterator>::iterator it) {
    SSL_SESSION_free(it->second->second);
    order_.erase(it->second);
    index_.erase(it);
  }
};

SessionCache& cache() {
  static SessionCache* c = new SessionCache;  // lives as long as any context may call it
  return *c;
}

int new_session(SSL*, SSL_SESSION* s) {
  cache().add(s);
  return 0;  // we took our own reference
}

SSL_SESSION* get_session(SSL*, const unsigned char* id, int len, int* copy) {
  *copy = 0;
  return cache().get(id, len);
}

void remove_session(SSL_CTX*, SSL_SESSION* s) { cache().remove(s); }

}  // namespace

void use_shared_session_cache(SSL_CTX* ctx, std::size_t max_sessions, std::uint32_t timeout_seconds) {
  cache().set_limit(max_sessions);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);  // TLS 1.2: session IDs; TLS 1.3: stateful tickets
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_sess_set_new_cb(ctx, new_session);
  SSL_CTX_sess_set_get_cb(ctx, get_session);
  SSL_CTX_sess_set_remove_cb(ctx, remove_session);
  SSL_CTX_set_timeout(ctx, static_cast<long>(timeout_seconds));
}

}  // namespace certgate::tls
