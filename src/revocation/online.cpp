#include "revocation/online.hpp"

#include "pki/x509_text.hpp"
#include "revocation/cert_urls.hpp"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

namespace certgate::revocation {
namespace {

std::string ago(std::int64_t now, std::int64_t then) {
  return std::to_string(std::max<std::int64_t>(0, now - then)) + " s ago";
}

// What the store offers one validation, and what that validation found missing.
class Source final : public pki::RevocationSource {
 public:
  Source(const pki::TrustStore& trust, Store& store, bool fetch, std::int64_t now)
      : trust_(trust), store_(store), opt_(trust.options()), fetch_(fetch), now_(now),
        max_urls_(store.settings().max_urls_per_certificate) {}

  std::vector<Need> needs;
  std::int64_t valid_until = INT64_MAX;

  void add_material(X509* leaf, STACK_OF(X509) * pool, STACK_OF(X509_CRL) * crls,
                    STACK_OF(X509) * extra) override {
    leaf_ = leaf;
    pool_ = pool;
    extra_ = extra;
    std::vector<X509*> todo{leaf};
    for (int i = 0; pool && i < sk_X509_num(pool); ++i) todo.push_back(sk_X509_value(pool, i));
    std::set<std::string> seen_crl, seen_aia;
    // Issuers fetched from AIA may name issuers of their own: walk them too (bounded).
    for (std::size_t i = 0; i < todo.size() && i < 16; ++i)
      for (const auto& url : urls(todo[i]).ca_issuers) {
        if (!seen_aia.insert(url).second) continue;
        if (auto e = store_.issuers(url, todo[i]))
          for (const auto& c : e->certs) {
            X509_up_ref(c.get());
            sk_X509_push(extra, c.get());
            todo.push_back(c.get());
          }
      }
    for (std::size_t i = 0; i < todo.size() && i < 16; ++i) {
      const CertUrls& u = urls(todo[i]);
      if (crls) {
        std::vector<std::string> points;
        for (const auto& dp : u.crl) points.push_back(dp.url);
        points.insert(points.end(), u.delta_crl.begin(), u.delta_crl.end());
        for (const auto& url : points) {
          if (!seen_crl.insert(url).second) continue;
          auto e = store_.crl(url);
          if (!e || !usable(*e)) {
            // Delta CRLs (Freshest CRL) are fetched alongside, for certificates on the trusted
            // path only; the store keeps one only if a certificate chaining to an anchor signed
            // it, the validation checks its scope, and a missing one only means no delta.
            const bool delta = std::find(u.delta_crl.begin(), u.delta_crl.end(), url) != u.delta_crl.end();
            X509* issuer = delta && fetch_ && fetchable(url) ? path_issuer(todo[i]) : nullptr;
            if (issuer) {
              Need n;
              n.kind = Kind::Crl;
              n.url = url;
              n.subject = share(todo[i]);
              n.issuer = share(issuer);
              n.indirect = true;
              n.anchors = anchors();
              n.timeout_ms = opt_.url_timeout_ms;
              if (store_.may_fetch(n.key(), now_, opt_.retry_seconds)) needs.push_back(std::move(n));
            }
          }
          if (!e) continue;
          store_.touch_crl(url, now_);
          if (!usable(*e)) continue;
          X509_CRL_up_ref(e->crl.get());
          sk_X509_CRL_push(crls, e->crl.get());
          used_crls_[url] = e;
          valid_until = std::min(valid_until, limit_of(*e));
        }
      }
    }
  }

  int crl_problem(X509* cert, X509* issuer, int code) override {
    const CertUrls& u = urls(cert);
    // A fresh OCSP answer speaks for the certificate whatever the CRLs say.
    if (issuer)
      for (const auto& url : u.ocsp) {
        Need n = ocsp_need(url, cert, issuer);
        auto e = store_.ocsp(n.key());
        if (!e || e->next_update <= now_) continue;
        valid_until = std::min(valid_until, e->next_update);
        switch (e->status) {
          case OcspStatus::Good:
            good_[cert] = "OCSP " + url;
            return X509_V_OK;
          case OcspStatus::Revoked:
            revoked_[cert] = "was revoked on " + pki::utc_text(e->revoked_at) + " (OCSP " + url + ")";
            return X509_V_ERR_CERT_REVOKED;
          case OcspStatus::Unknown:
            unknown_[cert] = "the OCSP responder " + url + " does not know the certificate";
            return code;
        }
      }
    std::vector<Need> candidates;
    for (const auto& dp : u.crl) {
      if (!fetchable(dp.url) || !issuer) continue;
      Need n;
      n.kind = Kind::Crl;
      n.url = dp.url;
      n.subject = share(cert);
      n.issuer = share(issuer);
      n.indirect = dp.indirect;
      n.timeout_ms = opt_.url_timeout_ms;
      candidates.push_back(std::move(n));
    }
    std::vector<Need> ocsp;
    if (issuer)
      for (const auto& url : u.ocsp)
        if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0) ocsp.push_back(ocsp_need(url, cert, issuer));
    if (opt_.prefer_ocsp) candidates.insert(candidates.begin(), ocsp.begin(), ocsp.end());
    else candidates.insert(candidates.end(), ocsp.begin(), ocsp.end());

    // The trust gate: nothing is fetched for a certificate unless its path verifies up to an
    // anchor of the site (signatures, constraints, validity; revocation aside), so a chain
    // made by anyone else never makes the server connect anywhere or record anything.
    const bool trusted = fetch_ && !candidates.empty() && issuer && path_issuer(cert) &&
                         X509_cmp(path_issuer(cert), issuer) == 0;
    if (trusted)
      for (auto& n : candidates)
        if (store_.may_fetch(n.key(), now_, opt_.retry_seconds)) {
          n.anchors = anchors();
          needs.push_back(std::move(n));
          return code;
        }
    unknown_[cert] = fetch_ && !trusted && !candidates.empty()
                         ? "nothing is fetched for a chain that does not verify up to a trusted issuer"
                         : explain(candidates, code, u);
    return code;
  }

  // AIA is how a missing issuer is found, so it is asked before the path is known to reach an
  // anchor; what it answers is kept only if it issued `cert` and chains to one (Store).
  void missing_issuer(X509* cert) override {
    if (!fetch_) return;
    for (const auto& url : urls(cert).ca_issuers) {
      if (!fetchable(url)) continue;
      if (store_.issuers(url, cert)) continue;
      Need n;
      n.kind = Kind::CaIssuers;
      n.url = url;
      n.subject = share(cert);
      n.anchors = anchors();
      n.timeout_ms = opt_.url_timeout_ms;
      if (store_.may_fetch(n.key(), now_, opt_.retry_seconds) &&
          store_.may_fetch(n.subject_key(), now_, opt_.retry_seconds)) {
        needs.push_back(std::move(n));
        return;
      }
    }
  }

  std::string unknown_detail(X509* cert) override {
    auto it = unknown_.find(cert);
    return it == unknown_.end() ? "" : it->second;
  }

  std::string revoked_detail(X509* cert) override {
    if (auto it = revoked_.find(cert); it != revoked_.end()) return it->second;
    for (const auto& [url, e] : used_crls_) {
      X509_REVOKED* r = nullptr;
      if (X509_CRL_get0_by_cert(e->crl.get(), &r, cert) == 1 && r)
        return "was revoked on " + pki::utc_text(pki::to_unix(X509_REVOKED_get0_revocationDate(r))) +
               " by " + e->issuer_name + " (CRL " + url + ")";
    }
    return "";
  }

  std::string good_detail(X509* cert) override {
    if (auto it = good_.find(cert); it != good_.end()) return it->second;
    for (const auto& dp : urls(cert).crl)
      if (used_crls_.count(dp.url)) return "CRL " + dp.url;
    return "";
  }

 private:
  const pki::TrustStore& trust_;
  Store& store_;
  const pki::TrustOptions& opt_;
  bool fetch_;
  std::int64_t now_;
  std::size_t max_urls_;
  X509* leaf_ = nullptr;
  STACK_OF(X509)* pool_ = nullptr;   // presented and configured certificates (verify_chain's)
  STACK_OF(X509)* extra_ = nullptr;  // cached AIA issuers
  std::shared_ptr<const pki::AnchorCheck> anchors_;
  std::optional<std::vector<pki::X509Ptr>> path_;  // computed when a fetch is first considered
  std::map<X509*, CertUrls> urls_;
  std::map<std::string, std::shared_ptr<const CrlEntry>> used_crls_;
  std::map<X509*, std::string> good_, revoked_, unknown_;

  static std::shared_ptr<X509> share(X509* c) {
    if (!c) return nullptr;
    X509_up_ref(c);
    return std::shared_ptr<X509>(c, X509_free);
  }

  const CertUrls& urls(X509* c) {
    auto it = urls_.find(c);
    if (it == urls_.end()) it = urls_.emplace(c, cert_urls(c, max_urls_)).first;
    return it->second;
  }

  std::shared_ptr<const pki::AnchorCheck> anchors() {
    if (!anchors_) {
      pki::X509StackView all(sk_X509_new_null());
      for (STACK_OF(X509)* s : {pool_, extra_})
        for (int i = 0; s && i < sk_X509_num(s); ++i) sk_X509_push(all.get(), sk_X509_value(s, i));
      anchors_ = std::make_shared<const pki::AnchorCheck>(trust_, all.get(), now_);
    }
    return anchors_;
  }

  // `cert`'s issuer on the leaf's verified path to an anchor; null when `cert` is on no such path.
  X509* path_issuer(X509* cert) {
    if (!path_) path_ = leaf_ ? anchors()->path(leaf_) : std::vector<pki::X509Ptr>{};
    for (std::size_t i = 0; i + 1 < path_->size(); ++i)
      if (X509_cmp((*path_)[i].get(), cert) == 0) return (*path_)[i + 1].get();
    return nullptr;
  }

  Need ocsp_need(const std::string& url, X509* cert, X509* issuer) {
    Need n;
    n.kind = Kind::Ocsp;
    n.url = url;
    n.subject = share(cert);
    n.issuer = share(issuer);
    n.timeout_ms = opt_.url_timeout_ms;
    return n;
  }

  std::int64_t limit_of(const CrlEntry& e) const {
    std::int64_t limit = e.next_update ? e.next_update : INT64_MAX;
    if (opt_.freshness_seconds > 0) limit = std::min(limit, e.fetched_at + opt_.freshness_seconds);
    return limit;
  }
  bool usable(const CrlEntry& e) const { return limit_of(e) > now_; }

  // Why no status could be had, naming each place that was tried.
  std::string explain(const std::vector<Need>& tried, int code, const CertUrls& u) {
    if (tried.empty()) {
      std::string unusable;
      for (const auto& dp : u.crl)
        if (!fetchable(dp.url)) unusable += (unusable.empty() ? "" : ", ") + dp.url;
      if (!unusable.empty())
        return "its CRL distribution point " + unusable +
               " is never fetched (only http, https and ldap URLs are), and no CRL from its issuer "
               "is in crl_files";
      if (!u.crl.empty() || !u.ocsp.empty()) return "";
      return code == X509_V_ERR_UNABLE_TO_GET_CRL
                 ? "no CRL from its issuer is in crl_files, and the certificate names no CRL "
                   "distribution point or OCSP responder"
                 : "";
    }
    std::string out;
    for (const auto& n : tried) {
      std::string part = (n.kind == Kind::Ocsp ? "OCSP " : "CRL ") + n.url + ": ";
      auto s = store_.state(n.key());
      auto crl = n.kind == Kind::Crl ? store_.crl(n.url) : nullptr;
      if (s && !s->last_error.empty())
        part += s->last_error + " (" + ago(now_, s->last_attempt) + ")";
      else if (crl)
        part += "the cached CRL expired " + pki::utc_text(limit_of(*crl)) +
                (fetch_ ? "" : " (revocation = cache-only: nothing is fetched)");
      else
        part += fetch_ ? "not fetched yet" : "not in the cache (revocation = cache-only: nothing is fetched)";
      out += (out.empty() ? "" : "; ") + part;
    }
    return out;
  }
};

}  // namespace

Validation validate(const pki::TrustStore& trust, Store* store, X509* leaf, STACK_OF(X509) * presented,
                    bool allow_fetch, std::optional<std::int64_t> at, pki::Detail detail) {
  Validation v;
  const pki::TrustOptions& opt = trust.options();
  const bool consult = store && opt.revocation != pki::RevocationMode::Off;
  if (!consult) {
    v.report = pki::verify_chain(trust, leaf, presented, at, detail);
    return v;
  }
  // Revocation dates are judged by the store's clock (the one that stamped what it holds).
  const std::int64_t present = store->clock().unix_seconds();
  const std::int64_t now = at.value_or(present);
  // The store fetches for its present only: a validation at another time (verify --at) is
  // judged with what the store already holds.
  const bool at_present = std::abs(now - present) <= 1;
  Source src(trust, *store, allow_fetch && opt.revocation == pki::RevocationMode::Online && at_present, now);
  v.report = pki::verify_chain(trust, leaf, presented, now, detail, &src);
  v.needs = std::move(src.needs);
  v.valid_until = src.valid_until;
  if (!v.needs.empty()) return v;
  // spec: behaviour.md §2 "soft_fail (decision): when on, unreachable status is logged and accepted"
  if (opt.soft_fail && v.report.fault == auth::ChainFault::RevocationUnknown) {
    v.soft_failed = true;
    v.report.fault = auth::ChainFault::None;
    v.report.revocation_unknown_accepted = true;
    v.report.reason = "accepted with unknown revocation status (soft_fail): " + v.report.reason;
  }
  return v;
}

}  // namespace certgate::revocation
