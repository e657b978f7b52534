#include "tls/ticket_keys.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

namespace certgate::tls {
namespace {

constexpr std::int64_t kRotationSeconds = 3600;
constexpr std::size_t kKeysKept = 3;  // the current one and the two before it

struct Key {
  unsigned char name[16];
  unsigned char aes[32];
  unsigned char hmac[32];
  std::int64_t created;
};

struct Ring {
  std::vector<Key> keys;  // newest first
};

std::atomic<std::shared_ptr<const Ring>> g_ring;
std::mutex g_rotate;

std::atomic<const runtime::Clock*> g_clock{&runtime::system_clock()};

std::int64_t now_seconds() { return g_clock.load(std::memory_order_relaxed)->steady_ms() / 1000; }

// Fetched once: an implicit fetch per handshake is measurable in OpenSSL 3.
const EVP_CIPHER* aes256cbc() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return cipher;
}

std::shared_ptr<const Ring> ring_at(std::int64_t now) {
  auto r = g_ring.load(std::memory_order_acquire);
  if (r && now - r->keys.front().created < kRotationSeconds) return r;
  std::lock_guard lock(g_rotate);
  r = g_ring.load(std::memory_order_acquire);
  if (r && now - r->keys.front().created < kRotationSeconds) return r;
  auto next = std::make_shared<Ring>();
  Key k{};
  if (RAND_bytes(k.name, sizeof k.name) != 1 || RAND_bytes(k.aes, sizeof k.aes) != 1 ||
      RAND_bytes(k.hmac, sizeof k.hmac) != 1)
    return r;  // no randomness: keep the old keys rather than make weak ones
  k.created = now;
  next->keys.push_back(k);
  if (r)
    for (std::size_t i = 0; i < r->keys.size() && next->keys.size() < kKeysKept; ++i)
      next->keys.push_back(r->keys[i]);
  g_ring.store(next, std::memory_order_release);
  return next;
}

bool set_hmac(EVP_MAC_CTX* hctx, const Key& k) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(k.hmac), sizeof k.hmac),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  return EVP_MAC_CTX_set_params(hctx, params) == 1;
}

int ticket_key_cb(SSL*, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cctx,
                  EVP_MAC_CTX* hctx, int enc) {
  auto ring = ring_at(now_seconds());
  if (!ring || ring->keys.empty()) return enc ? -1 : 0;
  if (enc) {
    const Key& k = ring->keys.front();
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes256cbc())) != 1) return -1;
    std::memcpy(key_name, k.name, sizeof k.name);
    if (EVP_EncryptInit_ex(cctx, aes256cbc(), nullptr, k.aes, iv) != 1 || !set_hmac(hctx, k)) return -1;
    return 1;
  }
  for (std::size_t i = 0; i < ring->keys.size(); ++i) {
    const Key& k = ring->keys[i];
    if (std::memcmp(key_name, k.name, sizeof k.name) != 0) continue;
    if (!set_hmac(hctx, k) || EVP_DecryptInit_ex(cctx, aes256cbc(), nullptr, k.aes, iv) != 1) return -1;
    return i == 0 ? 1 : 2;  // 2: accepted, and renewed under the current key
  }
  return 0;  // an unknown or retired key: a full handshake
}

}  // namespace

void use_rotating_ticket_keys(SSL_CTX* ctx, const runtime::Clock& clock) {
  g_clock.store(&clock, std::memory_order_relaxed);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
}

std::vector<std::string> ticket_key_names_at(std::int64_t now) {
  std::vector<std::string> names;
  if (auto ring = ring_at(now))
    for (const Key& k : ring->keys) names.emplace_back(reinterpret_cast<const char*>(k.name), sizeof k.name);
  return names;
}

}  // namespace certgate::tls
