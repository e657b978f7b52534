#include "tls/record_ciphers.hpp"

// The ENGINE and EVP_CIPHER_meth interfaces are deprecated in OpenSSL 3 but kept through the 3.x
// series; they are the only way to reach the built-in cipher code from libssl.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/opensslconf.h>
#ifndef OPENSSL_NO_ENGINE
#include <openssl/engine.h>
#endif

#include <atomic>
#include <iterator>

namespace certgate::tls {
namespace {
std::atomic<bool> g_on{false};
}

std::string record_ciphers_description() {
  return g_on ? "built-in record ciphers" : "provider record ciphers";
}

#if !defined(OPENSSL_NO_ENGINE) && !defined(CERTGATE_NO_BUILTIN_KEY_METHODS)
namespace {

constexpr char kEngineId[] = "certgate-builtin-ciphers";
const int kNids[] = {NID_aes_128_gcm, NID_aes_256_gcm, NID_chacha20_poly1305};
EVP_CIPHER* g_ciphers[std::size(kNids)] = {};

const EVP_CIPHER* builtin(int nid) {
  switch (nid) {
    case NID_aes_128_gcm: return EVP_aes_128_gcm();
    case NID_aes_256_gcm: return EVP_aes_256_gcm();
#ifndef OPENSSL_NO_CHACHA
    case NID_chacha20_poly1305: return EVP_chacha20_poly1305();
#endif
    default: return nullptr;
  }
}

int select_cipher(ENGINE*, const EVP_CIPHER** cipher, const int** nids, int nid) {
  if (!cipher) {
    *nids = kNids;
    return static_cast<int>(std::size(kNids));
  }
  *cipher = nullptr;
  for (std::size_t i = 0; i < std::size(kNids); ++i)
    if (kNids[i] == nid) *cipher = g_ciphers[i];
  return *cipher != nullptr;
}

}  // namespace

bool use_builtin_record_ciphers() {
  if (g_on) return true;
  if (EVP_default_properties_is_fips_enabled(nullptr)) return false;
  // A copy of the built-in EVP_CIPHER (its init, cipher, ctrl functions): the table itself is
  // static inside libcrypto, and an ENGINE must hand out a method object it owns.
  for (std::size_t i = 0; i < std::size(kNids); ++i) {
    const EVP_CIPHER* b = builtin(kNids[i]);
    if (!b || EVP_CIPHER_get0_provider(b) != nullptr) return false;
    if (!(g_ciphers[i] = EVP_CIPHER_meth_dup(b))) return false;
  }
  ENGINE* e = ENGINE_new();
  if (!e) return false;
  bool ok = ENGINE_set_id(e, kEngineId) &&
            ENGINE_set_name(e, "certgate: OpenSSL's built-in AES-GCM and ChaCha20-Poly1305") &&
            ENGINE_set_ciphers(e, select_cipher) && ENGINE_add(e) && ENGINE_register_ciphers(e);
  ENGINE_free(e);
  g_on = ok;
  return ok;
}
#else
bool use_builtin_record_ciphers() { return false; }
#endif

}  // namespace certgate::tls
