#include "tls/ticket_keys.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <stdexcept>
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

int file_keys_index() {
  static const int idx = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<std::shared_ptr<const TicketKeyFiles>*>(ptr);
      });
  return idx;
}

}  // namespace

struct TicketKeyFiles {
  std::vector<Key> keys;  // file order: the first encrypts
  ~TicketKeyFiles() {
    if (!keys.empty()) OPENSSL_cleanse(keys.data(), keys.size() * sizeof(Key));
  }
};

namespace {

int file_key_cb(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cctx,
                EVP_MAC_CTX* hctx, int enc) {
  // The SNI hook may have moved the connection to another site's context: every context of a
  // configuration generation holds the same keys.
  const auto* held = static_cast<const std::shared_ptr<const TicketKeyFiles>*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), file_keys_index()));
  if (!held || !*held || (*held)->keys.empty()) return enc ? -1 : 0;
  const auto& keys = (*held)->keys;
  if (enc) {
    const Key& k = keys.front();
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes256cbc())) != 1) return -1;
    std::memcpy(key_name, k.name, sizeof k.name);
    if (EVP_EncryptInit_ex(cctx, aes256cbc(), nullptr, k.aes, iv) != 1 || !set_hmac(hctx, k)) return -1;
    return 1;
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const Key& k = keys[i];
    if (std::memcmp(key_name, k.name, sizeof k.name) != 0) continue;
    if (!set_hmac(hctx, k) || EVP_DecryptInit_ex(cctx, aes256cbc(), nullptr, k.aes, iv) != 1) return -1;
    return i == 0 ? 1 : 2;
  }
  return 0;  // another deployment's key, or one rotated out: a full handshake
}

}  // namespace

std::shared_ptr<const TicketKeyFiles> load_ticket_key_files(const std::vector<std::filesystem::path>& files) {
  constexpr std::size_t kFileBytes = 80;
  auto out = std::make_shared<TicketKeyFiles>();
  for (const auto& f : files) {
    const std::string where = "ticket_key_files: " + f.string() + ": ";
    struct stat st{};
    if (::stat(f.c_str(), &st) != 0) throw std::runtime_error(where + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw std::runtime_error(where + "not a regular file");
    // Anyone who can read a key can decrypt every session it protected; anyone who can write
    // one can make every instance accept tickets of their own making.
    if (st.st_mode & (S_IRWXO | S_IWGRP))
      throw std::runtime_error(where + "readable or writable by others, or writable by its group "
                               "(chmod 600 or 640)");
    if (static_cast<std::size_t>(st.st_size) != kFileBytes)
      throw std::runtime_error(where + std::to_string(st.st_size) + " bytes; a ticket key file holds exactly " +
                               std::to_string(kFileBytes) + " (openssl rand 80 > file)" +
                               (st.st_size == 48 ? "; 48-byte AES-128 keys are not accepted" : ""));
    std::ifstream in(f, std::ios::binary);
    unsigned char raw[kFileBytes];
    if (!in.read(reinterpret_cast<char*>(raw), sizeof raw) || in.peek() != std::char_traits<char>::eof())
      throw std::runtime_error(where + "cannot be read whole (or is not 80 bytes)");
    Key k{};
    std::memcpy(k.name, raw, 16);
    std::memcpy(k.hmac, raw + 16, 32);
    std::memcpy(k.aes, raw + 48, 32);
    OPENSSL_cleanse(raw, sizeof raw);
    // A placeholder (truncate -s 80, fallocate, /dev/zero) passes every check above, and a key
    // anyone can guess lets anyone forge a ticket: a session, client certificate included, that
    // needs no private key. Such a file is refused, not served with.
    const auto uniform = [](const unsigned char* p, std::size_t n) {
      return std::all_of(p, p + n, [p](unsigned char c) { return c == p[0]; });
    };
    if (uniform(k.hmac, sizeof k.hmac) || uniform(k.aes, sizeof k.aes) ||
        CRYPTO_memcmp(k.hmac, k.aes, sizeof k.aes) == 0) {
      OPENSSL_cleanse(&k, sizeof k);
      throw std::runtime_error(where + "not random key material (one byte repeated, or the HMAC key equal to "
                               "the AES key); make it with openssl rand 80 > file");
    }
    for (const auto& other : out->keys)
      if (std::memcmp(other.name, k.name, sizeof k.name) == 0) {
        OPENSSL_cleanse(&k, sizeof k);
        throw std::runtime_error(where + "its key name (first 16 bytes) is also another file's");
      }
    out->keys.push_back(k);
    OPENSSL_cleanse(&k, sizeof k);  // the stack copy; `out` keeps (and cleanses) its own
  }
  return out;
}

void use_ticket_key_files(SSL_CTX* ctx, std::shared_ptr<const TicketKeyFiles> keys) {
  SSL_CTX_set_ex_data(ctx, file_keys_index(), new std::shared_ptr<const TicketKeyFiles>(std::move(keys)));
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, file_key_cb);
}

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
