#pragma once
// The bench's client certificates, one recipe for the load tool and the handshake floor so
// that both measure the same certificate: EC key given, clientAuth, OU=Staff, AKI, SHA-256.
#include <openssl/x509v3.h>

#include <string>
#include <utility>

namespace certgate::bench {

// `org`: an O= attribute before OU=Staff (nullptr: none). Valid from an hour ago for `days`.
inline X509* make_client_cert(X509* issuer, EVP_PKEY* issuer_key, EVP_PKEY* key, long serial,
                              const std::string& cn, long days, const char* org = nullptr) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
  X509_NAME* name = X509_get_subject_name(x);
  auto add = [name](const char* field, const char* value) {
    X509_NAME_add_entry_by_txt(name, field, MBSTRING_ASC, reinterpret_cast<const unsigned char*>(value), -1, -1, 0);
  };
  if (org) add("O", org);
  add("OU", "Staff");
  add("CN", cn.c_str());
  X509_set_issuer_name(x, X509_get_subject_name(issuer));
  X509_set_pubkey(x, key);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer, x, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                            std::pair{NID_key_usage, "critical,digitalSignature"},
                            std::pair{NID_ext_key_usage, "clientAuth"},
                            std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, issuer_key, EVP_sha256());
  return x;
}

}  // namespace certgate::bench
