#include "session/cert_cache.hpp"

#include <openssl/evp.h>

namespace certgate::session {

std::string leaf_sha256(X509* leaf) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(leaf, EVP_sha256(), md, &n);
  return std::string(reinterpret_cast<char*>(md), n);
}

std::string CertCache::put(X509* leaf, STACK_OF(X509) * chain) {
  std::string key = leaf_sha256(leaf);
  Entry e;
  X509_up_ref(leaf);
  e.certs.emplace_back(leaf);
  for (int i = 0; chain && i < sk_X509_num(chain); ++i) {
    X509* c = sk_X509_value(chain, i);
    X509_up_ref(c);
    e.certs.emplace_back(c);
  }
  std::lock_guard lock(mu_);
  auto [it, fresh] = entries_.insert_or_assign(key, std::move(e));
  if (fresh) {
    order_.push_back(key);
    while (entries_.size() > max_ && !order_.empty()) {
      entries_.erase(order_.front());
      order_.pop_front();
    }
  }
  return key;
}

std::optional<std::vector<pki::X509Ptr>> CertCache::find(const std::string& sha256) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(sha256);
  if (it == entries_.end()) return std::nullopt;
  std::vector<pki::X509Ptr> out;
  for (const auto& c : it->second.certs) {
    X509_up_ref(c.get());
    out.emplace_back(c.get());
  }
  return out;
}

std::size_t CertCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

CertCache& CertCache::process() {
  static CertCache cache(10000);
  return cache;
}

}  // namespace certgate::session
