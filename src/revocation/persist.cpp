// cache_dir: every verified CRL is written with the certificate that verified it and a small
// meta file (URL, fetch time, last attempt and error), so that a restart — cache-only mode
// included — still has them and `certgate crl status` can show them. Store's thread only (and
// the constructor), never under the store's lock.
#include "pki/x509_text.hpp"
#include "revocation/store_impl.hpp"

#include <openssl/err.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <system_error>

namespace certgate::revocation {
namespace fs = std::filesystem;

void Store::Impl::persist(const std::string& url, const std::string& der, X509* signer, std::int64_t fetched_at) const {
  if (settings.cache_dir.empty()) return;
  std::error_code ec;
  fs::create_directories(crl_dir(), ec);
  const std::string base = sha256_hex(url);
  const fs::path tmp = crl_dir() / (base + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(der.data(), static_cast<std::streamsize>(der.size()));
    if (!out) return;
  }
  fs::rename(tmp, crl_dir() / (base + ".crl"), ec);
  // The signer, so that after a restart refreshes are still checked against the same key.
  if (signer) {
    unsigned char* cder = nullptr;
    const int n = i2d_X509(signer, &cder);
    std::ofstream out(crl_dir() / (base + ".issuer"), std::ios::binary | std::ios::trunc);
    if (n > 0) out.write(reinterpret_cast<const char*>(cder), n);
    OPENSSL_free(cder);
  }
  write_meta(url, fetched_at, fetched_at, "");
}

void Store::Impl::write_meta(const std::string& url, std::int64_t fetched_at, std::int64_t attempt,
                             const std::string& error) const {
  if (settings.cache_dir.empty()) return;
  std::string one_line = error;
  std::replace(one_line.begin(), one_line.end(), '\n', ' ');
  std::ofstream meta(crl_dir() / (sha256_hex(url) + ".url"), std::ios::trunc);
  meta << url << "\n" << fetched_at << "\n" << attempt << "\n" << one_line << "\n";
}

void Store::Impl::unpersist(const std::string& url) const {
  if (settings.cache_dir.empty()) return;
  std::error_code ec;
  const std::string base = sha256_hex(url);
  fs::remove(crl_dir() / (base + ".crl"), ec);
  fs::remove(crl_dir() / (base + ".url"), ec);
  fs::remove(crl_dir() / (base + ".issuer"), ec);
}

// In the constructor, before the store's thread starts: nothing else can see the tables yet.
void Store::Impl::load() {
  if (settings.cache_dir.empty()) return;
  const std::int64_t now = clock.unix_seconds();
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(crl_dir(), ec)) {
    if (f.path().extension() != ".url") continue;
    std::ifstream meta(f.path());
    std::string url;
    std::int64_t fetched_at = 0;
    std::int64_t attempt = 0;
    std::string error;
    if (!std::getline(meta, url) || !(meta >> fetched_at)) continue;
    if (meta >> attempt) {
      meta.ignore(1);
      std::getline(meta, error);
    }
    fs::path crl_file = f.path();
    crl_file.replace_extension(".crl");
    std::ifstream in(crl_file, std::ios::binary);
    std::string der((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    X509_CRL* crl = parse_crl(der);
    if (!crl) {
      spdlog::warn("revocation cache: {} is not a CRL; ignored", crl_file.string());
      continue;
    }
    auto e = std::make_shared<CrlEntry>();
    e->crl = share(crl);
    fs::path issuer_file = f.path();
    issuer_file.replace_extension(".issuer");
    std::ifstream issuer_in(issuer_file, std::ios::binary);
    const std::string issuer_der((std::istreambuf_iterator<char>(issuer_in)), std::istreambuf_iterator<char>());
    const auto* ip = reinterpret_cast<const unsigned char*>(issuer_der.data());
    if (X509* signer = issuer_der.empty() ? nullptr : d2i_X509(nullptr, &ip, static_cast<long>(issuer_der.size())))
      e->issuer = share(signer);
    ERR_clear_error();
    e->fetched_at = fetched_at;
    e->this_update = time_of(X509_CRL_get0_lastUpdate(crl));
    e->next_update = time_of(X509_CRL_get0_nextUpdate(crl));
    e->issuer_name = pki::name_text(X509_CRL_get_issuer(crl));
    e->bytes = der.size();
    prepare(crl);
    if (auto old = crls.find(url); old != crls.end()) crl_bytes -= old->second->bytes;
    crl_bytes += e->bytes;
    crls[url] = e;
    crl_used[url] = now;  // refresh what the last run used
    Need n;
    n.kind = Kind::Crl;
    n.url = url;
    n.issuer = e->issuer;
    UrlState& s = states[n.key()];
    s.kind = Kind::Crl;
    s.url = url;
    s.last_success = fetched_at;
    s.last_attempt = attempt ? attempt : fetched_at;
    s.last_error = error;
  }
  evict();
  if (!crls.empty()) spdlog::info("revocation cache: {} CRLs loaded from {}", crls.size(), crl_dir().string());
}

}  // namespace certgate::revocation
