#include "pki/validation_cache.hpp"

#include "pki/x509_text.hpp"

#include <openssl/evp.h>

#include <algorithm>

namespace certgate::pki {
namespace {

constexpr std::int64_t kMaxAge = 3600;  // even with far-off dates, look again within the hour

void digest_cert(EVP_MD_CTX* ctx, X509* c) {
  unsigned char* der = nullptr;
  int n = i2d_X509(c, &der);
  if (n > 0) EVP_DigestUpdate(ctx, der, static_cast<std::size_t>(n));
  OPENSSL_free(der);
}

}  // namespace

std::string ValidationCache::key(X509* leaf, STACK_OF(X509) * chain) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, sha256_md(), nullptr);
  digest_cert(ctx, leaf);
  for (int i = 0; chain && i < sk_X509_num(chain); ++i) digest_cert(ctx, sk_X509_value(chain, i));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<char*>(md), n);
}

std::optional<ValidationCache::Hit> ValidationCache::find(const std::string& key, std::int64_t now,
                                                          std::uint64_t epoch) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  if (now >= it->second.expires || it->second.epoch != epoch) {
    entries_.erase(it);
    return std::nullopt;
  }
  return Hit{it->second.report, it->second.mapped, it->second.expires};
}

void ValidationCache::remember_mapping(const std::string& key, const auth::Outcome& mapped) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) it->second.mapped = mapped;
}

std::int64_t ValidationCache::lifetime(const TrustStore& trust, X509* leaf, STACK_OF(X509) * chain,
                                       std::int64_t now, std::int64_t valid_until) {
  std::int64_t expires = std::min(now + kMaxAge, valid_until);
  auto bound_by = [&](X509* c) {
    expires = std::min(expires, to_unix(X509_get0_notAfter(c)));
    // Every CRL that could speak for this certificate (same issuer name) bounds the result.
    if (trust.options().revocation == RevocationMode::Off) return;
    STACK_OF(X509_CRL)* crls = trust.crls();
    for (int i = 0; i < sk_X509_CRL_num(crls); ++i) {
      X509_CRL* crl = sk_X509_CRL_value(crls, i);
      if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(c)) != 0) continue;
      if (const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl)) expires = std::min(expires, to_unix(next));
    }
  };
  bound_by(leaf);
  for (int i = 0; chain && i < sk_X509_num(chain); ++i) bound_by(sk_X509_value(chain, i));
  // The configured intermediates and anchors can be part of the path too.
  for (int i = 0; i < sk_X509_num(trust.intermediates()); ++i) bound_by(sk_X509_value(trust.intermediates(), i));
  for (const auto& a : trust.anchors()) expires = std::min(expires, to_unix(X509_get0_notAfter(a.get())));
  return expires;
}

void ValidationCache::remember(const std::string& key, const auth::ChainReport& report, std::int64_t now,
                               std::int64_t expires, std::uint64_t epoch) {
  if (report.fault != auth::ChainFault::None || expires <= now) return;
  std::lock_guard lock(mu_);
  if (entries_.size() >= max_) entries_.clear();  // bounded; a cold cache only costs a re-check
  entries_[key] = Entry{report, expires, epoch, std::nullopt};
}

}  // namespace certgate::pki
