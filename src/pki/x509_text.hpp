#pragma once
// Turning certificate fields into the words certgate shows (error pages, logs, `verify`).
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace certgate::pki {

// "CN=alice, OU=Staff, O=Corp" (most specific first, as Windows shows it), UTF-8 kept.
std::string name_text(const X509_NAME* name);
std::string subject_text(const X509* cert);
std::string issuer_text(const X509* cert);
std::string serial_hex(const X509* cert);  // upper-case hex, no separators
std::int64_t to_unix(const ASN1_TIME* t);  // 0 when unparseable
std::string utc_text(std::int64_t unix_seconds);  // "2026-03-01 00:00:00 UTC"
// Drains OpenSSL's error queue into one line ("" when empty).
std::string openssl_errors();

// SHA-256 and SHA-1, fetched once: an implicit fetch (EVP_sha256()) takes OpenSSL 3's method-store
// locks on every use, which a handshake path pays in full.
const EVP_MD* sha256_md();
const EVP_MD* sha1_md();

std::string hex(const unsigned char* p, std::size_t n, bool upper = false);
// Hex of `md` over `data` (lower case unless `upper`).
std::string digest_hex(const EVP_MD* md, std::string_view data, bool upper = false);

}  // namespace certgate::pki
