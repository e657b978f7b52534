#include "tls/session_cache.hpp"

#include "tls/server_context.hpp"

#include <algorithm>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace certgate::tls {
namespace {

// A cached session holds its client's decoded certificates (the leaf and the chain it sent),
// which take about twice their DER in memory, plus the session itself: that is what an entry
// is charged. An estimate, not malloc's count, but proportional to what a client can make us
// keep, so a flood of sessions with huge certificates evicts others instead of growing memory.
constexpr std::size_t kDecodedFactor = 2;
constexpr std::size_t kSessionBytes = 1024;

std::size_t der_size(const X509* x) { return static_cast<std::size_t>(std::max(0, i2d_X509(x, nullptr))); }

std::size_t estimated_bytes(SSL* ssl, SSL_SESSION* s) {
  std::size_t der = 0;
  if (const X509* leaf = SSL_SESSION_get0_peer(s)) der += der_size(leaf);
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);  // server side: without the leaf
  for (int i = 0; chain && i < sk_X509_num(chain); ++i) der += der_size(sk_X509_value(chain, i));
  return kSessionBytes + der * kDecodedFactor;
}

class SessionCache {
 public:
  void set_limits(std::size_t max, std::size_t max_bytes, const runtime::Clock& clock) {
    std::lock_guard lock(mu_);
    clock_ = &clock;
    max_ = std::max(max_, max);  // the largest any context asked for
    max_bytes_ = std::max(max_bytes_, max_bytes);
  }

  void add(SSL* ssl, SSL_SESSION* s) {
    std::string id = id_of(s);
    if (id.empty()) return;
    const std::size_t bytes = estimated_bytes(ssl, s);
    std::lock_guard lock(mu_);
    if (auto it = index_.find(id); it != index_.end()) drop(it);
    if (bytes > max_bytes_) return;  // would evict everything else: not resumable instead
    SSL_SESSION_up_ref(s);
    // Aged on our clock from when we took it: SSL_SESSION_get_time is OpenSSL's real time, not
    // the clock the server decides by (which a test may move).
    order_.push_front({id, s, bytes, clock_->unix_seconds() + SSL_SESSION_get_timeout(s)});
    index_[id] = order_.begin();
    bytes_ += bytes;
    while (index_.size() > max_ || bytes_ > max_bytes_) drop(index_.find(order_.back().id));
  }

  SSL_SESSION* get(const unsigned char* data, int len) {
    std::string id(reinterpret_cast<const char*>(data), static_cast<std::size_t>(len));
    std::lock_guard lock(mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return nullptr;
    SSL_SESSION* s = it->second->session;
    if (clock_->unix_seconds() > it->second->expires) {
      drop(it);
      return nullptr;
    }
    SSL_SESSION_up_ref(s);  // the caller's reference (copy = 0 tells OpenSSL it owns it)
    return s;
  }

  void remove(SSL_SESSION* s) {
    std::string id = id_of(s);
    std::lock_guard lock(mu_);
    if (auto it = index_.find(id); it != index_.end() && it->second->session == s) drop(it);
  }

 private:
  const runtime::Clock* clock_ = &runtime::system_clock();
  struct Entry {
    std::string id;
    SSL_SESSION* session;
    std::size_t bytes;
    std::int64_t expires;  // unix seconds on clock_
  };
  std::mutex mu_;
  std::list<Entry> order_;  // newest first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  std::size_t max_ = 1;
  std::size_t max_bytes_ = 0;
  std::size_t bytes_ = 0;

  static std::string id_of(SSL_SESSION* s) {
    unsigned int len = 0;
    const unsigned char* id = SSL_SESSION_get_id(s, &len);
    return std::string(reinterpret_cast<const char*>(id), len);
  }
  void drop(std::unordered_map<std::string, std::list<Entry>::iterator>::iterator it) {
    SSL_SESSION_free(it->second->session);
    bytes_ -= it->second->bytes;
    order_.erase(it->second);
    index_.erase(it);
  }
};

SessionCache& cache() {
  static SessionCache* c = new SessionCache;  // lives as long as any context may call it
  return *c;
}

int new_session(SSL* ssl, SSL_SESSION* s) {
  // The chain key goes into the session before the session is shared: once cached, another
  // loop's thread may resume it and read that data while this handshake is still finishing.
  save_presented_chain(ssl);
  cache().add(ssl, s);
  return 0;  // we took our own reference
}

SSL_SESSION* get_session(SSL*, const unsigned char* id, int len, int* copy) {
  *copy = 0;
  return cache().get(id, len);
}

void remove_session(SSL_CTX*, SSL_SESSION* s) { cache().remove(s); }

}  // namespace

std::size_t largest_session_bytes(std::size_t cert_list_bytes) {
  return kSessionBytes + cert_list_bytes * kDecodedFactor;
}

void use_shared_session_cache(SSL_CTX* ctx, std::size_t max_sessions, std::size_t max_bytes,
                              std::uint32_t timeout_seconds, const runtime::Clock& clock) {
  cache().set_limits(max_sessions, max_bytes, clock);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);  // TLS 1.2: session IDs; TLS 1.3: stateful tickets
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_sess_set_new_cb(ctx, new_session);
  SSL_CTX_sess_set_get_cb(ctx, get_session);
  SSL_CTX_sess_set_remove_cb(ctx, remove_session);
  SSL_CTX_set_timeout(ctx, static_cast<long>(timeout_seconds));
}

}  // namespace certgate::tls
