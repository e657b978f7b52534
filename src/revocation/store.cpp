#include "revocation/store.hpp"

#include "fetch/http_fetch.hpp"
#include "pki/x509_text.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <ldap.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace certgate::revocation {
namespace asio = boost::asio;
namespace fs = std::filesystem;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view to_string(Kind k) {
  switch (k) {
    case Kind::Crl: return "crl";
    case Kind::Ocsp: return "ocsp";
    case Kind::CaIssuers: return "ca-issuers";
  }
  return "?";
}

namespace {

std::string sha256_hex(const std::string& data) { return pki::digest_hex(pki::sha256_md(), data); }

std::shared_ptr<X509_CRL> share(X509_CRL* c) { return std::shared_ptr<X509_CRL>(c, X509_CRL_free); }
std::shared_ptr<X509> share(X509* c) { return std::shared_ptr<X509>(c, X509_free); }

std::unique_ptr<OCSP_CERTID, pki::Deleter<OCSP_CERTID_free>> cert_id(X509* subject, X509* issuer) {
  return std::unique_ptr<OCSP_CERTID, pki::Deleter<OCSP_CERTID_free>>(
      OCSP_cert_to_id(EVP_sha1(), subject, issuer));
}

std::int64_t time_of(const ASN1_TIME* t) { return t ? pki::to_unix(t) : 0; }

X509_CRL* parse_crl(const std::string& body) {
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  if (X509_CRL* crl = d2i_X509_CRL(nullptr, &p, static_cast<long>(body.size()))) return crl;
  pki::BioPtr bio(BIO_new_mem_buf(body.data(), static_cast<int>(body.size())));
  return PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
}

// An AIA answer (one certificate, a certs-only PKCS#7, or PEM): at most kAiaCertificates of
// it are considered. Any chain can make the server fetch one, and each certificate that names the
// right issuer costs a path building on the store's thread, so a bundle of thousands of copies
// would cost seconds of it.
std::vector<std::shared_ptr<X509>> parse_certs(const std::string& body) {
  std::vector<std::shared_ptr<X509>> out;
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  if (X509* c = d2i_X509(nullptr, &p, static_cast<long>(body.size()))) {
    out.push_back(share(c));
    return out;
  }
  p = reinterpret_cast<const unsigned char*>(body.data());
  if (PKCS7* p7 = d2i_PKCS7(nullptr, &p, static_cast<long>(body.size()))) {  // certs-only .p7c
    STACK_OF(X509)* certs = PKCS7_type_is_signed(p7) ? p7->d.sign->cert : nullptr;
    for (int i = 0; certs && i < sk_X509_num(certs) && out.size() < kAiaCertificates; ++i) {
      X509_up_ref(sk_X509_value(certs, i));
      out.push_back(share(sk_X509_value(certs, i)));
    }
    PKCS7_free(p7);
    return out;
  }
  pki::BioPtr bio(BIO_new_mem_buf(body.data(), static_cast<int>(body.size())));
  while (out.size() < kAiaCertificates)
    if (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.push_back(share(c));
    else break;
  ERR_clear_error();
  return out;
}

// ldap://host/DN?certificateRevocationList;binary: the CRL of a directory distribution point.
// libldap's synchronous calls, bounded by the timeout, on a thread of their own.
fetch::Result ldap_fetch(const std::string& url, std::uint32_t timeout_ms, std::size_t max_bytes) {
  const auto started = std::chrono::steady_clock::now();
  fetch::Result r;
  r.final_url = url;
  LDAPURLDesc* lud = nullptr;
  if (ldap_url_parse(url.c_str(), &lud) != LDAP_SUCCESS) {
    r.error = "not an LDAP URL";
    return r;
  }
  // One host, as the URL's authority names it: percent-decoded, a host part may carry spaces or
  // commas, and libldap would take it as a list of servers, each tried for the whole timeout.
  const std::string host = lud->lud_host ? lud->lud_host : "";
  if (host.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_:") != std::string::npos) {
    ldap_free_urldesc(lud);
    r.error = "the LDAP URL does not name one host";
    return r;
  }
  const std::string server = std::string(lud->lud_scheme ? lud->lud_scheme : "ldap") + "://" +
                             (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                             (lud->lud_port ? ":" + std::to_string(lud->lud_port) : "");
  const std::string dn = lud->lud_dn ? lud->lud_dn : "";
  std::vector<std::string> attrs;
  for (int i = 0; lud->lud_attrs && lud->lud_attrs[i]; ++i) attrs.emplace_back(lud->lud_attrs[i]);
  ldap_free_urldesc(lud);
  if (attrs.empty()) attrs = {"certificateRevocationList;binary", "certificateRevocationList"};
  LDAP* ld = nullptr;
  if (ldap_initialize(&ld, server.c_str()) != LDAP_SUCCESS) {
    r.error = "cannot use server " + server;
    return r;
  }
  // liblber buffers a whole message before handing it over: without a cap on what it accepts,
  // a directory (an untrusted chain's caIssuers URL may be ldap:// to anyone) could make it
  // allocate gigabytes. The cap leaves room for the message's own framing.
  Sockbuf* sb = nullptr;
  ber_len_t max_incoming = static_cast<ber_len_t>(max_bytes) + 65536;
  if (ldap_get_option(ld, LDAP_OPT_SOCKBUF, &sb) != LDAP_OPT_SUCCESS || !sb ||
      ber_sockbuf_ctrl(sb, LBER_SB_OPT_SET_MAX_INCOMING, &max_incoming) != 1) {
    ldap_unbind_ext_s(ld, nullptr, nullptr);
    r.error = "cannot bound the size of an answer from " + server;
    return r;
  }
  const int v3 = LDAP_VERSION3;
  ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
  ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
  timeval tv{static_cast<time_t>(timeout_ms / 1000), static_cast<suseconds_t>((timeout_ms % 1000) * 1000)};
  ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
  ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
  std::vector<char*> list;
  for (auto& a : attrs) list.push_back(a.data());
  list.push_back(nullptr);
  LDAPMessage* res = nullptr;
  int rc = ldap_search_ext_s(ld, dn.c_str(), LDAP_SCOPE_BASE, "(objectClass=*)", list.data(), 0,
                             nullptr, nullptr, &tv, 1, &res);
  if (rc != LDAP_SUCCESS) {
    r.error = std::string("LDAP search failed: ") + ldap_err2string(rc);
  } else if (LDAPMessage* e = ldap_first_entry(ld, res)) {
    for (const auto& a : attrs) {
      berval** vals = ldap_get_values_len(ld, e, a.c_str());
      if (vals && vals[0]) {
        if (vals[0]->bv_len > max_bytes) {
          r.error = "answer larger than " + std::to_string(max_bytes) + " bytes";
        } else {
          r.body.assign(vals[0]->bv_val, vals[0]->bv_len);
          r.ok = true;
          r.status = 200;
        }
      }
      ldap_value_free_len(vals);
      if (r.ok || !r.error.empty()) break;
    }
    if (!r.ok && r.error.empty()) r.error = "the entry has no CRL attribute";
  } else {
    r.error = "no such entry: " + dn;
  }
  if (res) ldap_msgfree(res);
  ldap_unbind_ext_s(ld, nullptr, nullptr);
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  return r;
}

// A certificate's name in cache keys: its SHA-1 fingerprint, which OpenSSL keeps computed.
std::string cert_id_text(X509* c) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!c || X509_digest(c, EVP_sha1(), md, &n) != 1) return "-";
  return pki::hex(md, n);
}

// The issuer a certificate names (and its AKI): what an AIA answer for it must match.
std::string named_issuer_id(X509* c) {
  if (!c) return "-";
  unsigned char* der = nullptr;
  const int n = i2d_X509_NAME(X509_get_issuer_name(c), &der);
  std::string data = n > 0 ? std::string(reinterpret_cast<const char*>(der), static_cast<std::size_t>(n)) : "";
  OPENSSL_free(der);
  if (const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(c))
    data.append(reinterpret_cast<const char*>(ASN1_STRING_get0_data(aki)), static_cast<std::size_t>(ASN1_STRING_length(aki)));
  return sha256_hex(data).substr(0, 16);
}

// libldap is synchronous: its fetches run on a few threads of their own, started when first
// needed and never more than kLdapThreads, so a certificate naming hundreds of ldap:// URLs
// waits its turn instead of starting a thread each. The threads are detached: shutting down
// never waits for a directory that hangs (a running fetch keeps what it needs alive).
// AIA jobs, which any chain can cause, run on at most half of the threads and after CRL jobs,
// so a flood of them never holds every thread while a trusted client's CRL waits.
class LdapPool : public std::enable_shared_from_this<LdapPool> {
 public:
  // Throws std::system_error when no thread can be started at all.
  void post(std::function<void()> job, bool aia) {
    std::lock_guard lock(mu_);
    auto& line = aia ? aia_jobs_ : jobs_;
    line.push_back(std::move(job));
    if (idle_ == 0 && threads_ < kLdapThreads) {
      try {
        std::thread([self = shared_from_this()] { self->work(); }).detach();
        ++threads_;
      } catch (const std::system_error&) {
        if (threads_ == 0) {
          line.pop_back();
          throw;
        }
      }
    }
    cv_.notify_all();
  }

  void stop() {
    std::lock_guard lock(mu_);
    stopped_ = true;
    jobs_.clear();
    aia_jobs_.clear();
    cv_.notify_all();
  }

 private:
  static constexpr std::size_t kAiaThreads = std::max<std::size_t>(1, kLdapThreads / 2);
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_, aia_jobs_;
  std::size_t threads_ = 0, idle_ = 0, aia_running_ = 0;
  bool stopped_ = false;

  void work() {
    std::unique_lock lock(mu_);
    for (;;) {
      ++idle_;
      cv_.wait(lock, [&] {
        return stopped_ || !jobs_.empty() || (!aia_jobs_.empty() && aia_running_ < kAiaThreads);
      });
      --idle_;
      if (stopped_) return;
      const bool aia = jobs_.empty();
      auto& line = aia ? aia_jobs_ : jobs_;
      auto job = std::move(line.front());
      line.pop_front();
      if (aia) ++aia_running_;
      lock.unlock();
      job();
      lock.lock();
      if (aia) {
        --aia_running_;
        cv_.notify_all();  // an idle thread may take the next AIA job
      }
    }
  }
};

}  // namespace

std::string metrics_label(std::string_view v) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

StoreSettings store_settings(const config::ServerSettings& server) {
  StoreSettings s;
  s.cache_dir = server.cache_dir;
  s.max_fetch_bytes = server.max_fetch_bytes;
  s.max_redirects = server.max_fetch_redirects;
  s.max_cache_bytes = server.revocation_cache_bytes;
  s.max_entries = server.revocation_cache_entries;
  s.max_urls_per_certificate = server.revocation_urls_per_certificate;
  s.max_concurrent_fetches = server.revocation_concurrent_fetches;
  return s;
}

std::string Need::subject_key() const { return key() + " " + cert_id_text(subject.get()); }

std::string Need::key() const {
  switch (kind) {
    case Kind::Crl: return "crl " + url + " " + cert_id_text(issuer.get());
    case Kind::CaIssuers: return "aia " + url + " " + named_issuer_id(subject.get());
    case Kind::Ocsp: {
      std::string id;
      if (subject && issuer)
        if (auto cid = cert_id(subject.get(), issuer.get())) {
          unsigned char* der = nullptr;
          int n = i2d_OCSP_CERTID(cid.get(), &der);
          if (n > 0) id = pki::hex(der, static_cast<std::size_t>(n));
          OPENSSL_free(der);
        }
      return "ocsp " + url + " " + id;
    }
  }
  return url;
}

namespace {

constexpr long kOcspMaxAgeWithoutNextUpdate = 3600;

// Whether `next` was issued before `held`: an earlier thisUpdate, or the same second with a lower
// CRL number (RFC 5280 §5.2.3: numbers increase monotonically for a given issuer and scope).
bool older_crl(const CrlEntry& next, const CrlEntry& held) {
  if (next.this_update != held.this_update) return next.this_update < held.this_update;
  using NumberPtr = std::unique_ptr<ASN1_INTEGER, decltype(&ASN1_INTEGER_free)>;
  const auto number = [](X509_CRL* crl) {
    return NumberPtr(static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr)),
                     &ASN1_INTEGER_free);
  };
  NumberPtr a = number(next.crl.get()), b = number(held.crl.get());
  return a && b && ASN1_INTEGER_cmp(a.get(), b.get()) < 0;
}

// Whether `next` revokes a serial that `prev` (the CRL it replaces, if any) did not.
bool adds_revocations(const CrlEntry* prev, X509_CRL* next) {
  STACK_OF(X509_REVOKED)* listed = X509_CRL_get_REVOKED(next);
  if (prev == nullptr) return sk_X509_REVOKED_num(listed) > 0;
  for (int i = 0; i < sk_X509_REVOKED_num(listed); ++i) {
    X509_REVOKED* found = nullptr;
    const ASN1_INTEGER* serial = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(listed, i));
    if (X509_CRL_get0_by_serial(prev->crl.get(), &found, serial) != 1) return true;
  }
  return false;
}

}  // namespace

struct Store::Impl : std::enable_shared_from_this<Store::Impl> {
  StoreSettings settings;
  std::atomic<std::uint64_t> epoch{0};  // see Store::epoch()
  mutable std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<const CrlEntry>> crls;  // by URL
  std::unordered_map<std::string, std::shared_ptr<const OcspEntry>> ocsps;  // by Need::key()
  std::unordered_map<std::string, std::shared_ptr<const IssuersEntry>> issuers;  // by Need::key()
  std::map<std::string, UrlState> states;  // by Need::key()
  std::unordered_map<std::string, std::int64_t> crl_used;  // by URL, for cached CRLs only
  std::unordered_map<std::string, std::vector<std::function<void()>>> in_flight;
  // Waiting for one of max_concurrent_fetches. AIA fetches wait apart and take at most half the
  // slots: any chain can ask for them, so a flood of them must neither hold every slot nor fill
  // the queue that CRL and OCSP fetches (asked for trusted paths only) wait in.
  std::deque<Need> queued, queued_aia;
  std::size_t active = 0;      // fetches started and not finished
  std::size_t active_aia = 0;  // of which AIA
  std::function<void(const FetchEvent&)> recorder;
  std::size_t crl_bytes = 0;
  // Totals for /metrics by kind: never per URL, so the series stay few whatever certificates name.
  std::array<std::uint64_t, 3> ok_total{}, error_total{};
  std::array<std::int64_t, 3> elapsed_ms_total{};
  std::uint64_t rejected_total = 0;
  std::shared_ptr<LdapPool> ldap_pool = std::make_shared<LdapPool>();

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  asio::steady_timer refresh_timer{io};
  std::thread thread;
  // Host names in AIA URLs (any chain can name one) are looked up here, apart from those of
  // distribution points and OCSP responders: a name whose lookup hangs holds only this resolver.
  asio::io_context aia_resolve_io;
  asio::executor_work_guard<asio::io_context::executor_type> aia_resolve_work{aia_resolve_io.get_executor()};
  std::thread aia_resolve_thread;

  // ---- persistence -------------------------------------------------------------------------
  fs::path crl_dir() const { return settings.cache_dir / "crl"; }

  void persist(const std::string& url, const std::string& der, X509* signer, std::int64_t fetched_at) {
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

  // url, fetched_at, last attempt, last error: what `certgate crl status` shows after a restart.
  void write_meta(const std::string& url, std::int64_t fetched_at, std::int64_t attempt, const std::string& error) {
    if (settings.cache_dir.empty()) return;
    std::string one_line = error;
    std::replace(one_line.begin(), one_line.end(), '\n', ' ');
    std::ofstream meta(crl_dir() / (sha256_hex(url) + ".url"), std::ios::trunc);
    meta << url << "\n" << fetched_at << "\n" << attempt << "\n" << one_line << "\n";
  }

  void unpersist(const std::string& url) {
    if (settings.cache_dir.empty()) return;
    std::error_code ec;
    const std::string base = sha256_hex(url);
    fs::remove(crl_dir() / (base + ".crl"), ec);
    fs::remove(crl_dir() / (base + ".url"), ec);
    fs::remove(crl_dir() / (base + ".issuer"), ec);
  }

  void load() {
    if (settings.cache_dir.empty()) return;
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
      crl_bytes += e->bytes;
      crls[url] = e;
      crl_used[url] = unix_now();  // refresh what the last run used
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
    bound();
    if (!crls.empty()) spdlog::info("revocation cache: {} CRLs loaded from {}", crls.size(), crl_dir().string());
  }

  // OpenSSL sorts a CRL's entries on its first lookup; do it here, off the request loops, so
  // every later lookup is a binary search.
  static void prepare(X509_CRL* crl) {
    X509_REVOKED* r = nullptr;
    ASN1_INTEGER* zero = ASN1_INTEGER_new();
    X509_CRL_get0_by_serial(crl, &r, zero);
    ASN1_INTEGER_free(zero);
  }

  std::int64_t last_used(const std::string& url) const {  // caller holds `mu`
    auto it = crl_used.find(url);
    return it == crl_used.end() ? 0 : it->second;
  }

  // Drops the least recently used CRLs until the bounds hold. Caller holds `mu`.
  void bound() {
    // AIA issuers are bounded on their own, oldest first, and never push out a CRL or an OCSP
    // answer: any chain can have one cached (a copy of a trusted CA certificate served at a URL
    // of its own), while CRLs and OCSP answers come from trusted paths only.
    while (issuers.size() > std::max<std::size_t>(1, settings.max_entries / 8)) {
      auto oldest = std::min_element(issuers.begin(), issuers.end(), [](const auto& a, const auto& b) {
        return a.second->fetched_at < b.second->fetched_at;
      });
      issuers.erase(oldest);
    }
    while (!crls.empty() && (crl_bytes > settings.max_cache_bytes ||
                             crls.size() + ocsps.size() > settings.max_entries)) {
      auto victim = std::min_element(crls.begin(), crls.end(), [&](const auto& a, const auto& b) {
        return last_used(a.first) < last_used(b.first);
      });
      crl_bytes -= victim->second->bytes;
      unpersist(victim->first);
      crl_used.erase(victim->first);
      crls.erase(victim);
    }
    if (ocsps.size() > settings.max_entries)
      ocsps.clear();  // answers are cheap to ask again; a bound matters more than their reuse
    // Fetch outcomes, one per (URL, issuer): drop the oldest tenth once over the bound, so
    // certificates naming ever new URLs cannot grow the table (pacing of what is dropped is
    // forgotten, which the per-certificate and concurrency caps still bound). AIA outcomes go
    // first: any chain can add those, while CRL and OCSP ones come from trusted paths only.
    if (states.size() > settings.max_entries) {
      std::vector<std::pair<std::pair<bool, std::int64_t>, std::string>> by_age;
      by_age.reserve(states.size());
      for (const auto& [k, st] : states)
        if (!in_flight.count(k))
          by_age.push_back({{st.kind != Kind::CaIssuers, std::max(st.last_attempt, st.last_used)}, k});
      const std::size_t drop = std::min(by_age.size(), states.size() - settings.max_entries * 9 / 10);
      std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(drop), by_age.end());
      for (std::size_t i = 0; i < drop; ++i) states.erase(by_age[i].second);
    }
  }

  // ---- fetching ----------------------------------------------------------------------------
  void record(const Need& n, bool ok, const std::string& result, std::int64_t elapsed) {
    std::function<void(const FetchEvent&)> rec;
    {
      std::lock_guard lock(mu);
      rec = recorder;
    }
    if (rec) rec(FetchEvent{n.kind, n.url, n.subject ? pki::subject_text(n.subject.get()) : "", ok, result, elapsed});
  }

  // `transient`: the fetch never reached the URL (too many waiting, no thread): nothing is
  // recorded against the URL, so a load spike never paces a later, legitimate use of it.
  void complete(const Need& n, const fetch::Result& r, bool transient = false) {
    const std::int64_t now = unix_now();
    std::string error = r.ok ? "" : r.error;
    bool fresh = false;
    std::string verified;
    std::string der_to_persist;
    std::shared_ptr<CrlEntry> crl_entry;
    std::shared_ptr<OcspEntry> ocsp_entry;
    std::shared_ptr<IssuersEntry> issuers_entry;
    bool about_subject = false;  // the outcome depends on n.subject, not only on the URL
    if (r.ok) {
      switch (n.kind) {
        case Kind::Crl: crl_entry = take_crl(n, r.body, now, error, fresh, verified); break;
        case Kind::Ocsp: ocsp_entry = take_ocsp(n, r.body, now, error, fresh, verified); break;
        case Kind::CaIssuers:
          issuers_entry = take_issuers(n, r.body, now, error, fresh, verified, about_subject);
          break;
      }
      if (crl_entry) der_to_persist = r.body;
    }
    const auto kind = static_cast<std::size_t>(n.kind);
    std::vector<std::function<void()>> waiters;
    std::int64_t rolled_back = 0;  // thisUpdate of the newer CRL kept instead of this one
    {
      std::lock_guard lock(mu);
      if (transient) {
        ++rejected_total;
      } else {
        UrlState& s = states[about_subject ? n.subject_key() : n.key()];
        s.kind = n.kind;
        s.url = n.url;
        s.last_attempt = now;
        s.last_elapsed_ms = r.elapsed.count();
        elapsed_ms_total[kind] += r.elapsed.count();
        if (error.empty()) {
          ++s.ok;
          ++ok_total[kind];
          s.last_success = now;
          s.last_error.clear();
        } else {
          ++s.failed;
          ++error_total[kind];
          s.last_error = error;
        }
        if (!fresh) s.last_useless = now;
      }
      // Only what verified against a certificate chaining to an anchor gets here.
      if (crl_entry) {
        auto old = crls.find(n.url);
        // A CRL older than the one held (a replayed or stale copy, still before its nextUpdate)
        // could only un-revoke: the newest verified CRL stays.
        if (old != crls.end() && older_crl(*crl_entry, *old->second)) {
          rolled_back = old->second->this_update;
          crl_entry.reset();
        }
      }
      if (crl_entry) {
        auto old = crls.find(n.url);
        if (adds_revocations(old == crls.end() ? nullptr : old->second.get(), crl_entry->crl.get()))
          epoch.fetch_add(1, std::memory_order_release);
        if (old != crls.end()) crl_bytes -= old->second->bytes;
        crl_bytes += crl_entry->bytes;
        crls[n.url] = crl_entry;
        crl_used.try_emplace(n.url, now);
        persist(n.url, der_to_persist, crl_entry->issuer.get(), now);
      }
      else if (n.kind == Kind::Crl && crls.count(n.url) && !transient)  // a failed refresh of a cached CRL
        write_meta(n.url, crls[n.url]->fetched_at, now, error);
      if (ocsp_entry) {
        if (ocsp_entry->status != OcspStatus::Good) epoch.fetch_add(1, std::memory_order_release);
        ocsps[n.key()] = ocsp_entry;
      }
      if (issuers_entry) issuers[n.key()] = issuers_entry;
      bound();
      auto it = in_flight.find(n.key());
      if (it != in_flight.end()) {
        waiters = std::move(it->second);
        in_flight.erase(it);
      }
    }
    if (rolled_back)
      spdlog::warn("revocation: CRL {} is older than the one held (thisUpdate {}): kept the newer one",
                   n.url, pki::utc_text(rolled_back));
    if (!error.empty())
      spdlog::warn("revocation: {} {} failed: {}", to_string(n.kind), n.url, error);
    record(n, error.empty(), error.empty() ? verified : error, r.elapsed.count());
    for (auto& w : waiters) w();
  }

  // An AIA answer: only certificates that can issue the one asked for (name, AKI) and that
  // chain to the requesting site's anchors are kept; anything else could be an attacker's.
  std::shared_ptr<IssuersEntry> take_issuers(const Need& n, const std::string& body, std::int64_t now,
                                             std::string& error, bool& fresh, std::string& verified,
                                             bool& about_subject) {
    auto certs = parse_certs(body);
    if (certs.empty()) {
      error = "the answer holds no certificate";
      return nullptr;
    }
    std::vector<std::shared_ptr<X509>> kept;
    for (auto& c : certs)
      if (n.anchors && n.subject && n.anchors->vouches_issuer(c.get(), n.subject.get())) kept.push_back(c);
    if (kept.empty()) {
      about_subject = true;
      error = "the answer holds no certificate that issued '" +
              (n.subject ? pki::subject_text(n.subject.get()) : std::string("?")) +
              "' and chains to a trusted issuer";
      return nullptr;
    }
    fresh = true;
    verified = std::to_string(kept.size()) + " certificate(s)";
    return std::make_shared<IssuersEntry>(IssuersEntry{std::move(kept), now});
  }

  std::shared_ptr<CrlEntry> take_crl(const Need& n, const std::string& body, std::int64_t now,
                                     std::string& error, bool& fresh, std::string& verified) {
    X509_CRL* raw = parse_crl(body);
    if (!raw) {
      error = "the answer is not a CRL";
      return nullptr;
    }
    auto crl = share(raw);
    // A CRL from a certificate's own distribution point is signed by that certificate's issuer
    // (unless the point names a cRLIssuer: then OpenSSL checks it during validation). Anything
    // else is refused here, before it can be cached.
    std::shared_ptr<X509> signer;
    if (n.issuer && !n.indirect) {
      if (X509_NAME_cmp(X509_CRL_get_issuer(raw), X509_get_subject_name(n.issuer.get())) != 0) {
        error = "the CRL is issued by '" + pki::name_text(X509_CRL_get_issuer(raw)) +
                "', not by the certificate's issuer '" + pki::subject_text(n.issuer.get()) + "'";
        return nullptr;
      }
      if (X509_CRL_verify(raw, X509_get0_pubkey(n.issuer.get())) != 1) {
        ERR_clear_error();
        error = "the CRL's signature does not verify with the key of '" +
                pki::subject_text(n.issuer.get()) + "'";
        return nullptr;
      }
      signer = n.issuer;
    } else if (n.anchors) {  // cRLIssuer or delta CRL: signed by a certificate of the trusted PKI
      pki::X509Ptr found = n.anchors->crl_signer(raw);
      if (!found) {
        error = "the CRL's issuer '" + pki::name_text(X509_CRL_get_issuer(raw)) +
                "' is not a certificate that chains to a trusted issuer and verifies its signature";
        return nullptr;
      }
      signer = share(found.release());
    } else {
      error = "no trusted certificate to check the CRL's signature against";
      return nullptr;
    }
    prepare(raw);
    auto e = std::make_shared<CrlEntry>();
    e->crl = crl;
    e->issuer = signer;  // refreshes are checked directly against the key that verified it
    e->indirect = false;
    e->fetched_at = now;
    e->this_update = time_of(X509_CRL_get0_lastUpdate(raw));
    e->next_update = time_of(X509_CRL_get0_nextUpdate(raw));
    e->issuer_name = pki::name_text(X509_CRL_get_issuer(raw));
    e->bytes = body.size();
    fresh = e->next_update == 0 || e->next_update > now;
    if (!fresh) error = "the CRL's nextUpdate " + pki::utc_text(e->next_update) + " has passed";
    verified = "Base CRL (" + std::to_string(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(raw))) +
               " entries, next update " + pki::utc_text(e->next_update) + ")";
    return e;
  }

  std::shared_ptr<OcspEntry> take_ocsp(const Need& n, const std::string& body, std::int64_t now,
                                       std::string& error, bool& fresh, std::string& verified) {
    const auto* p = reinterpret_cast<const unsigned char*>(body.data());
    std::unique_ptr<OCSP_RESPONSE, pki::Deleter<OCSP_RESPONSE_free>> resp(
        d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(body.size())));
    if (!resp) {
      error = "the answer is not an OCSP response";
      return nullptr;
    }
    if (int st = OCSP_response_status(resp.get()); st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
      error = std::string("the responder answered ") + OCSP_response_status_str(st);
      return nullptr;
    }
    std::unique_ptr<OCSP_BASICRESP, pki::Deleter<OCSP_BASICRESP_free>> basic(OCSP_response_get1_basic(resp.get()));
    if (!basic) {
      error = "the OCSP response has no basic response";
      return nullptr;
    }
    // The responder must be the issuer or a responder it delegated (OCSPSigning EKU).
    pki::X509StorePtr store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), n.issuer.get());
    X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
    pki::X509StackView certs(sk_X509_new_null());
    sk_X509_push(certs.get(), n.issuer.get());
    if (OCSP_basic_verify(basic.get(), certs.get(), store.get(), 0) != 1) {
      error = "the OCSP response's signature is not the issuer's or its delegated responder's: " +
              pki::openssl_errors();
      return nullptr;
    }
    auto id = cert_id(n.subject.get(), n.issuer.get());
    int status = 0, reason = 0;
    ASN1_GENERALIZEDTIME *rev = nullptr, *thisupd = nullptr, *nextupd = nullptr;
    if (OCSP_resp_find_status(basic.get(), id.get(), &status, &reason, &rev, &thisupd, &nextupd) != 1) {
      error = "the OCSP response does not mention the certificate";
      return nullptr;
    }
    // Without nextUpdate nothing bounds a response's age, so a years-old "good" answer replayed
    // by someone on the path would pass: such an answer must be recent (thisUpdate within an hour).
    if (OCSP_check_validity(thisupd, nextupd, 300, nextupd ? -1 : kOcspMaxAgeWithoutNextUpdate) != 1) {
      ERR_clear_error();
      error = nextupd ? "the OCSP response is outside its validity period"
                      : "the OCSP response has no nextUpdate and its thisUpdate is more than an hour old";
      return nullptr;
    }
    auto e = std::make_shared<OcspEntry>();
    e->status = status == V_OCSP_CERTSTATUS_GOOD ? OcspStatus::Good
                : status == V_OCSP_CERTSTATUS_REVOKED ? OcspStatus::Revoked : OcspStatus::Unknown;
    e->revoked_at = time_of(rev);
    e->this_update = time_of(thisupd);
    // No nextUpdate: the responder always has fresh status; reuse the answer for a while.
    e->next_update = nextupd ? time_of(nextupd) : now + 300;
    e->fetched_at = now;
    e->url = n.url;
    fresh = true;
    verified = std::string("OCSP ") + OCSP_cert_status_str(status);
    return e;
  }

  // Starts queued fetches while fewer than max_concurrent_fetches run. On the store's thread.
  // CRL and OCSP fetches first; AIA ones only while fewer than aia_slots() of them run.
  void pump() {
    for (;;) {
      Need n;
      {
        std::lock_guard lock(mu);
        if (active >= slots()) return;
        if (!queued.empty()) {
          n = std::move(queued.front());
          queued.pop_front();
        } else if (!queued_aia.empty() && active_aia < aia_slots()) {
          n = std::move(queued_aia.front());
          queued_aia.pop_front();
          ++active_aia;
        } else {
          return;
        }
        ++active;
      }
      start(std::move(n));
    }
  }

  std::size_t slots() const { return std::max<std::size_t>(1, settings.max_concurrent_fetches); }
  std::size_t aia_slots() const { return std::max<std::size_t>(1, slots() / 2); }

  // A started fetch ended (once, whatever happened): frees its slot and starts the next.
  void finish(const Need& n, const fetch::Result& r, bool transient) {
    {
      std::lock_guard lock(mu);
      --active;
      if (n.kind == Kind::CaIssuers) --active_aia;
    }
    complete(n, r, transient);
    pump();
  }

  void start(Need n) {
    auto self = shared_from_this();
    auto finished = std::make_shared<bool>(false);  // only touched on the store's thread
    auto done = [self, n, finished](fetch::Result r, bool transient) {
      if (*finished) return;
      *finished = true;
      self->finish(n, r, transient);
    };
    // Issuer certificates are small, and any chain can make the server ask for them: their
    // answers get a smaller cap than CRLs (parsing a PKCS#7 costs time in its size).
    const std::size_t max_bytes =
        n.kind == Kind::CaIssuers ? std::min(settings.max_fetch_bytes, kAiaMaxBytes) : settings.max_fetch_bytes;
    // Running out of memory or threads is an error for this fetch, never the process's end.
    try {
      if (n.url.rfind("ldap://", 0) == 0) {
        ldap_pool->post([self, n, done, max = max_bytes]() {
          fetch::Result r;
          try {
            r = ldap_fetch(n.url, n.timeout_ms, max);
          } catch (const std::exception& e) {
            r.error = std::string("LDAP fetch failed: ") + e.what();
          }
          asio::post(self->io, [done, r = std::move(r)]() { done(r, false); });
        }, n.kind == Kind::CaIssuers);
        return;
      }
      fetch::Request req;
      req.url = n.url;
      req.timeout_ms = n.timeout_ms;
      req.max_bytes = max_bytes;
      req.max_redirects = settings.max_redirects;
      if (n.kind == Kind::CaIssuers) req.resolver_io = &aia_resolve_io;
      if (n.kind == Kind::Ocsp) {
        std::unique_ptr<OCSP_REQUEST, pki::Deleter<OCSP_REQUEST_free>> ocsp(OCSP_REQUEST_new());
        OCSP_request_add0_id(ocsp.get(), cert_id(n.subject.get(), n.issuer.get()).release());
        unsigned char* der = nullptr;
        const int len = i2d_OCSP_REQUEST(ocsp.get(), &der);
        req.method = "POST";
        req.content_type = "application/ocsp-request";
        req.body.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(std::max(len, 0)));
        OPENSSL_free(der);
      }
      fetch::http_fetch(io, std::move(req), [done](fetch::Result r) { done(std::move(r), false); });
    } catch (const std::exception& e) {
      fetch::Result r;
      r.error = std::string("cannot start the fetch: ") + e.what();
      done(std::move(r), true);
    }
  }

  void fetch(std::vector<Need> needs, std::function<void()> done) {
    if (needs.empty()) return asio::post(io, std::move(done));
    auto remaining = std::make_shared<std::atomic<std::size_t>>(needs.size());
    auto one_done = [remaining, done = std::move(done)]() {
      if (remaining->fetch_sub(1) == 1) done();
    };
    std::vector<Need> refused;
    {
      std::lock_guard lock(mu);
      const std::size_t max_queued = slots() * kQueuedPerConcurrent;
      for (auto& n : needs) {
        auto [it, fresh] = in_flight.try_emplace(n.key());
        it->second.push_back(one_done);
        if (!fresh) continue;
        auto& line = n.kind == Kind::CaIssuers ? queued_aia : queued;
        if (line.size() >= max_queued) refused.push_back(std::move(n));
        else line.push_back(std::move(n));
      }
    }
    auto self = shared_from_this();
    for (auto& n : refused)
      asio::post(io, [self, n = std::move(n)] {
        fetch::Result r;
        r.error = "too many revocation fetches waiting";
        self->complete(n, r, true);
      });
    asio::post(io, [self] { self->pump(); });
  }

  // ---- background refresh --------------------------------------------------------------------
  void schedule_refresh() {
    refresh_timer.expires_after(std::chrono::seconds(15));
    refresh_timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        self->refresh_due();
        self->schedule_refresh();
      }
    });
  }

  // CRLs still in use are fetched again shortly before their nextUpdate (a tenth of their
  // validity, at most five minutes), so requests never wait for a CRL that simply aged.
  void refresh_due() {
    const std::int64_t now = unix_now();
    std::vector<Need> due;
    {
      std::lock_guard lock(mu);
      for (const auto& [url, e] : crls) {
        // Without the key that verified it (persisted by an older version) a refresh could not
        // be checked: the next validation that needs the CRL fetches it with its issuer.
        if (!e->issuer || now - last_used(url) > 3600) continue;
        const std::int64_t lead = std::min<std::int64_t>(300, std::max<std::int64_t>(1, (e->next_update - e->this_update) / 10));
        if (e->next_update == 0 || now < e->next_update - lead) continue;
        Need n;
        n.kind = Kind::Crl;
        n.url = url;
        n.issuer = e->issuer;
        const std::string key = n.key();
        const auto st = states.find(key);
        if (in_flight.count(key) || (st != states.end() && now - st->second.last_useless < 60)) continue;
        due.push_back(std::move(n));
      }
    }
    if (!due.empty()) fetch(std::move(due), [] {});
  }
};

namespace {

// A handler that throws (a resolver thread that cannot start, memory) costs that fetch, not the
// process: the loop goes on serving every other one.
void run_surviving(asio::io_context& io, const char* what) {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("revocation: a fetch failed inside {}: {}", what, e.what());
    }
  }
}

}  // namespace

Store::Store(StoreSettings settings) : impl_(std::make_shared<Impl>()) {
  impl_->settings = std::move(settings);
  impl_->load();
  impl_->schedule_refresh();
  impl_->thread = std::thread([impl = impl_.get()] { run_surviving(impl->io, "the fetch loop"); });
  impl_->aia_resolve_thread =
      std::thread([impl = impl_.get()] { run_surviving(impl->aia_resolve_io, "the AIA resolver"); });
}

Store::~Store() { shutdown(); }

void Store::shutdown() {
  impl_->aia_resolve_work.reset();
  impl_->aia_resolve_io.stop();
  if (impl_->aia_resolve_thread.joinable()) impl_->aia_resolve_thread.join();
  impl_->ldap_pool->stop();
  impl_->work.reset();
  asio::post(impl_->io, [impl = impl_.get()] { impl->refresh_timer.cancel(); });
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  // Nothing completes a fetch any more: its waiters would otherwise live as long as the
  // abandoned fetch's handlers, which hold the store (and outlive the loops).
  std::unordered_map<std::string, std::vector<std::function<void()>>> waiting;
  {
    std::lock_guard lock(impl_->mu);
    waiting.swap(impl_->in_flight);
    impl_->queued.clear();
    impl_->queued_aia.clear();
  }
}

std::shared_ptr<const CrlEntry> Store::crl(const std::string& url) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->crls.find(url);
  return it == impl_->crls.end() ? nullptr : it->second;
}

std::shared_ptr<const OcspEntry> Store::ocsp(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->ocsps.find(key);
  return it == impl_->ocsps.end() ? nullptr : it->second;
}

std::shared_ptr<const IssuersEntry> Store::issuers(const std::string& url, X509* subject) const {
  const std::string key = "aia " + url + " " + named_issuer_id(subject);
  std::lock_guard lock(impl_->mu);
  auto it = impl_->issuers.find(key);
  return it == impl_->issuers.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<X509>> Store::issuer_certificates() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::shared_ptr<X509>> out;
  for (const auto& [key, e] : impl_->issuers) out.insert(out.end(), e->certs.begin(), e->certs.end());
  return out;
}

std::optional<UrlState> Store::state(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->states.find(key);
  if (it == impl_->states.end()) return std::nullopt;
  return it->second;
}

bool Store::may_fetch(const std::string& key, std::int64_t now, std::int64_t retry_seconds) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->states.find(key);
  return it == impl_->states.end() || it->second.last_useless == 0 ||
         now - it->second.last_useless >= retry_seconds;
}

std::uint64_t Store::epoch() const { return impl_->epoch.load(std::memory_order_acquire); }

void Store::touch_crl(const std::string& url, std::int64_t now) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->crl_used.find(url);
  if (it != impl_->crl_used.end()) it->second = now;
}

const StoreSettings& Store::settings() const { return impl_->settings; }

void Store::fetch(std::vector<Need> needs, std::function<void()> done) {
  impl_->fetch(std::move(needs), std::move(done));
}

void Store::fetch_and_wait(std::vector<Need> needs) {
  std::promise<void> finished;
  auto f = finished.get_future();
  impl_->fetch(std::move(needs), [&finished] { finished.set_value(); });
  f.wait();
}

void Store::set_recorder(std::function<void(const FetchEvent&)> recorder) {
  std::lock_guard lock(impl_->mu);
  impl_->recorder = std::move(recorder);
}

std::vector<UrlState> Store::states() const {
  std::lock_guard lock(impl_->mu);
  std::vector<UrlState> out;
  for (const auto& [k, s] : impl_->states) out.push_back(s);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<const CrlEntry>>> Store::crls() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::pair<std::string, std::shared_ptr<const CrlEntry>>> out(impl_->crls.begin(), impl_->crls.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

void Store::refresh_all_and_wait(std::uint32_t timeout_ms) {
  std::vector<Need> needs;
  for (const auto& [url, e] : crls()) {
    Need n;
    n.kind = Kind::Crl;
    n.url = url;
    n.issuer = e->issuer;  // null (persisted by an older version): refused unless verified
    n.timeout_ms = timeout_ms;
    needs.push_back(std::move(n));
  }
  fetch_and_wait(std::move(needs));
}

std::string Store::metrics() const {
  const std::int64_t now = unix_now();
  std::ostringstream out;
  std::lock_guard lock(impl_->mu);
  static constexpr Kind kKinds[] = {Kind::Crl, Kind::Ocsp, Kind::CaIssuers};
  out << "# HELP certgate_revocation_fetches_total Revocation fetches (CRL, OCSP, AIA) by kind and result.\n"
         "# TYPE certgate_revocation_fetches_total counter\n";
  for (Kind k : kKinds) {
    const auto i = static_cast<std::size_t>(k);
    out << "certgate_revocation_fetches_total{kind=\"" << to_string(k) << "\",result=\"ok\"} " << impl_->ok_total[i] << "\n"
        << "certgate_revocation_fetches_total{kind=\"" << to_string(k) << "\",result=\"error\"} " << impl_->error_total[i] << "\n";
  }
  out << "# HELP certgate_revocation_fetch_seconds_total Time spent in revocation fetches, by kind.\n"
         "# TYPE certgate_revocation_fetch_seconds_total counter\n";
  for (Kind k : kKinds)
    out << "certgate_revocation_fetch_seconds_total{kind=\"" << to_string(k) << "\"} "
        << static_cast<double>(impl_->elapsed_ms_total[static_cast<std::size_t>(k)]) / 1000.0 << "\n";
  out << "# HELP certgate_revocation_fetches_rejected_total Fetches refused before they started (too many waiting, no thread).\n"
         "# TYPE certgate_revocation_fetches_rejected_total counter\n"
      << "certgate_revocation_fetches_rejected_total " << impl_->rejected_total << "\n"
      << "# HELP certgate_revocation_fetches_in_flight Fetches running now.\n"
         "# TYPE certgate_revocation_fetches_in_flight gauge\n"
      << "certgate_revocation_fetches_in_flight " << impl_->active << "\n"
      << "# HELP certgate_revocation_fetches_queued Fetches waiting for a free slot.\n"
         "# TYPE certgate_revocation_fetches_queued gauge\n"
      << "certgate_revocation_fetches_queued " << impl_->queued.size() + impl_->queued_aia.size() << "\n"
      << "# HELP certgate_revocation_tracked_urls Fetch outcomes remembered (URL and issuer) for retry pacing.\n"
         "# TYPE certgate_revocation_tracked_urls gauge\n"
      << "certgate_revocation_tracked_urls " << impl_->states.size() << "\n";
  // Per-URL series only for the most recently used cached CRLs: a bounded label set.
  std::vector<std::pair<std::int64_t, const std::string*>> recent;
  for (const auto& [url, e] : impl_->crls) recent.emplace_back(impl_->last_used(url), &url);
  const std::size_t shown = std::min(recent.size(), kMetricsUrlSeries);
  std::partial_sort(recent.begin(), recent.begin() + static_cast<std::ptrdiff_t>(shown), recent.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && *a.second < *b.second); });
  recent.resize(shown);
  out << "# HELP certgate_crl_cache_age_seconds Age of each cached CRL (since it was fetched; the "
      << kMetricsUrlSeries << " most recently used).\n"
         "# TYPE certgate_crl_cache_age_seconds gauge\n";
  for (const auto& [used, url] : recent)
    out << "certgate_crl_cache_age_seconds{url=\"" << metrics_label(*url) << "\"} " << now - impl_->crls.at(*url)->fetched_at << "\n";
  out << "# HELP certgate_crl_next_update_seconds Seconds until each cached CRL's nextUpdate (negative: expired).\n"
         "# TYPE certgate_crl_next_update_seconds gauge\n";
  for (const auto& [used, url] : recent)
    out << "certgate_crl_next_update_seconds{url=\"" << metrics_label(*url) << "\"} " << impl_->crls.at(*url)->next_update - now << "\n";
  out << "# HELP certgate_revocation_cache_entries Cached CRLs, OCSP answers and AIA certificates.\n"
         "# TYPE certgate_revocation_cache_entries gauge\n"
      << "certgate_revocation_cache_entries{kind=\"crl\"} " << impl_->crls.size() << "\n"
      << "certgate_revocation_cache_entries{kind=\"ocsp\"} " << impl_->ocsps.size() << "\n"
      << "certgate_revocation_cache_entries{kind=\"ca-issuers\"} " << impl_->issuers.size() << "\n"
      << "# HELP certgate_crl_cache_bytes Bytes of cached CRLs.\n# TYPE certgate_crl_cache_bytes gauge\n"
      << "certgate_crl_cache_bytes " << impl_->crl_bytes << "\n";
  return out.str();
}

}  // namespace certgate::revocation
