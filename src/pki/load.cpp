#include "pki/load.hpp"

#include "pki/x509_text.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace certgate::pki {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxFileBytes = 64u << 20;  // bound what a config can make us read

bool looks_pem(const std::string& bytes) {
  return bytes.find("-----BEGIN ") != std::string::npos;
}

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  std::string detail = openssl_errors();
  throw LoadError(file.string() + ": " + what + (detail.empty() ? "" : " (" + detail + ")"));
}

}  // namespace

std::string read_file(const fs::path& file) {
  std::error_code ec;
  auto size = fs::file_size(file, ec);
  if (ec) throw LoadError(file.string() + ": cannot read: " + ec.message());
  if (size > kMaxFileBytes)
    throw LoadError(file.string() + ": file is larger than 64 MiB, refusing to load it");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw LoadError(file.string() + ": cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<X509Ptr> parse_certificates(const std::string& bytes) {
  std::vector<X509Ptr> out;
  if (looks_pem(bytes)) {
    BioPtr bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
    while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
      out.emplace_back(x);
    ERR_clear_error();  // the loop ends on "no start line"
  } else {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data());
    if (X509* x = d2i_X509(nullptr, &p, static_cast<long>(bytes.size()))) out.emplace_back(x);
  }
  return out;
}

std::vector<X509Ptr> load_certificates(const fs::path& file) {
  auto certs = parse_certificates(read_file(file));
  if (certs.empty()) fail(file, "no certificate found (expected PEM or DER)");
  return certs;
}

namespace {
void crls_from_file(const fs::path& file, std::vector<X509CrlPtr>& out) {
  std::string bytes = read_file(file);
  std::size_t before = out.size();
  if (looks_pem(bytes)) {
    BioPtr bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
    while (X509_CRL* c = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr))
      out.emplace_back(c);
    ERR_clear_error();
  } else {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data());
    if (X509_CRL* c = d2i_X509_CRL(nullptr, &p, static_cast<long>(bytes.size())))
      out.emplace_back(c);
  }
  if (out.size() == before) fail(file, "no CRL found (expected PEM or DER)");
}
}  // namespace

std::vector<X509CrlPtr> load_crls(const fs::path& path) {
  std::vector<X509CrlPtr> out;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) crls_from_file(f, out);
  } else {
    crls_from_file(path, out);
  }
  return out;
}

KeyAndChain load_pkcs12(const fs::path& file, const std::string& password) {
  std::string bytes = read_file(file);
  BioPtr bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
  Pkcs12Ptr p12(d2i_PKCS12_bio(bio.get(), nullptr));
  if (!p12) fail(file, "not a PKCS#12 file");
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* ca = nullptr;
  if (PKCS12_parse(p12.get(), password.c_str(), &key, &cert, &ca) != 1)
    fail(file, "cannot open PKCS#12 file (wrong pfx_password?)");
  KeyAndChain out{EvpPkeyPtr(key), X509Ptr(cert), {}};
  X509StackPtr chain(ca);
  while (chain && sk_X509_num(chain.get()) > 0) out.chain.emplace_back(sk_X509_shift(chain.get()));
  if (!out.key || !out.cert) fail(file, "PKCS#12 file holds no certificate with its private key");
  return out;
}

KeyAndChain load_pem_identity(const fs::path& cert_file, const fs::path& key_file) {
  auto certs = load_certificates(cert_file);
  std::string key_bytes = read_file(key_file);
  BioPtr bio(BIO_new_mem_buf(key_bytes.data(), static_cast<int>(key_bytes.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) fail(key_file, "no unencrypted PEM private key found");
  KeyAndChain out{EvpPkeyPtr(key), std::move(certs.front()), {}};
  for (std::size_t i = 1; i < certs.size(); ++i) out.chain.push_back(std::move(certs[i]));
  if (X509_check_private_key(out.cert.get(), out.key.get()) != 1)
    fail(key_file, "private key does not match certificate " + cert_file.string());
  return out;
}

}  // namespace certgate::pki
