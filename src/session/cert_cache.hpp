#pragma once
// The certificates that step-up cookies stand for, by the SHA-256 of the leaf's DER: the step-up
// binding puts the chain a client presented here, and a request carrying a cookie takes it back
// to have the pipeline validate and map it again (revocation, expiry, mapping changes and reloads
// take effect at each request). Nothing here is trusted: it is only what a client once sent.
// Bounded (oldest out first); process-wide and thread-safe. A miss (evicted, restarted, another
// instance) sends the client through the step-up again.
#include "pki/openssl_ptr.hpp"

#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace certgate::session {

class CertCache {
 public:
  explicit CertCache(std::size_t max_entries) : max_(max_entries) {}

  // The leaf first, then what the client sent after it. Returns the leaf's SHA-256 (32 bytes).
  std::string put(X509* leaf, STACK_OF(X509) * chain);
  // Leaf first; nullopt when unknown.
  std::optional<std::vector<pki::X509Ptr>> find(const std::string& sha256) const;
  std::size_t size() const;

  // The server's one cache (docs/on-demand.md: 10000 certificates).
  static CertCache& process();

 private:
  struct Entry {
    std::vector<pki::X509Ptr> certs;
  };
  std::size_t max_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<std::string> order_;  // insertion order, for eviction
};

std::string leaf_sha256(X509* leaf);

}  // namespace certgate::session
