#include "pki/key_decoding.hpp"

// The ENGINE interface is deprecated in OpenSSL 3 but kept through the 3.x series; it is the only
// switch that makes x509_pubkey_decode() take the built-in path.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/opensslconf.h>
#ifndef OPENSSL_NO_ENGINE
#include <openssl/engine.h>
#endif

#include <openssl/crypto.h>

#include <atomic>
#include <iterator>

namespace certgate::pki {
namespace {
std::atomic<bool> g_builtin{false};
std::atomic<bool> g_rsa{true};  // RSA among the built-in key types
}

std::string key_methods_description() {
  return std::string(OpenSSL_version(OPENSSL_VERSION)) +
         (!g_builtin ? ", provider key decoders"
          : g_rsa    ? ", built-in EC/RSA key methods"
                     : ", built-in EC key methods (RSA: provider)");
}

#if !defined(OPENSSL_NO_ENGINE) && !defined(CERTGATE_NO_BUILTIN_KEY_METHODS)
namespace {

const int kKeyTypes[] = {EVP_PKEY_EC, EVP_PKEY_RSA};  // EC first: without RSA only it is listed
constexpr char kEngineId[] = "certgate-builtin-keys";

int builtin_methods(ENGINE*, EVP_PKEY_METHOD** method, const int** nids, int nid) {
  if (!method) {
    *nids = kKeyTypes;
    return g_rsa ? static_cast<int>(std::size(kKeyTypes)) : 1;
  }
  *method = nid == EVP_PKEY_RSA && !g_rsa ? nullptr : const_cast<EVP_PKEY_METHOD*>(EVP_PKEY_meth_find(nid));
  return *method != nullptr;
}

}  // namespace

bool use_builtin_key_methods() {
  if (EVP_default_properties_is_fips_enabled(nullptr)) return false;
  for (int nid : kKeyTypes)
    if (!EVP_PKEY_meth_find(nid)) return false;
  ENGINE* e = ENGINE_new();
  if (!e) return false;
  // ENGINE_add keeps the engine alive in OpenSSL's list; the method table alone holds no reference.
  bool ok = ENGINE_set_id(e, kEngineId) &&
            ENGINE_set_name(e, "certgate: OpenSSL's built-in EC and RSA key methods") &&
            ENGINE_set_pkey_meths(e, builtin_methods) && ENGINE_add(e) && ENGINE_register_pkey_meths(e);
  ENGINE_free(e);
  g_builtin = ok;
  return ok;
}

void stop_builtin_rsa_methods() {
  if (!g_builtin || !g_rsa.exchange(false)) return;
  // Registering again reads the key types anew (now EC only); the engine table has its own lock.
  if (ENGINE* e = ENGINE_by_id(kEngineId)) {
    ENGINE_unregister_pkey_meths(e);
    ENGINE_register_pkey_meths(e);
    ENGINE_free(e);
  }
}
#else
bool use_builtin_key_methods() { return false; }
void stop_builtin_rsa_methods() {}
#endif

}  // namespace certgate::pki
