#include "pipeline/evidence.hpp"

#include "directory/ldap_connection.hpp"
#include "http/basic_auth.hpp"
#include "pki/cert_facts.hpp"
#include "revocation/online.hpp"
#include "runtime/snapshot.hpp"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

namespace certgate::pipeline {

RequestState::RequestState(const Inputs& in) : in_(in) {
  if (!in_.trust) in_.trust = in_.site->trust.get();
  // A token-login certificate on a plain-HTTP binding is a certificate, not a TLS connection.
  ev_.over_tls = in_.tls != nullptr && in_.tls->tls;
  if (in_.tls) {
    ev_.cipher_bits = in_.tls->cipher_bits;
    ev_.cert_requested = in_.tls->cert_requested;
    ev_.cert_presented = in_.tls->leaf != nullptr;
  }
}

// The validation of the connection's chain for this site: the connection's own result while the
// revocation epoch is the one it was computed under and it has not expired, else the site's
// validation cache, else a validation (CPU only) that may ask for fetches first.
const auth::ChainReport* RequestState::chain_report() {
  tls::TlsFacts& t = *in_.tls;
  const runtime::SiteRuntime& site = *in_.site;
  revocation::Store* store = in_.store;
  const std::uint64_t epoch = store ? store->epoch() : 0;
  const std::int64_t now = in_.clock->unix_seconds();
  if (t.report && t.report_epoch == epoch && now < t.report_until) return &*t.report;
  t.report.reset();
  if (!in_.trust) {
    t.report = auth::ChainReport{auth::ChainFault::UntrustedRoot,
                                 "site \"" + site.cfg.name + "\" trusts no certificate issuer", {}};
    t.report_until = INT64_MAX;
  } else {
    const pki::TrustStore& trust = *in_.trust;
    // The site's cache holds results under the site's own trust settings only.
    pki::ValidationCache* cache = in_.trust == site.trust.get() ? site.validations.get() : nullptr;
    if (t.chain_key.empty()) t.chain_key = pki::ValidationCache::key(t.leaf.get(), t.presented_chain());
    std::optional<pki::ValidationCache::Hit> hit;
    if (cache && in_.detail == pki::Detail::Brief) hit = cache->find(t.chain_key, now, epoch);
    if (hit) {
      tls::chain_checks().cached.fetch_add(1, std::memory_order_relaxed);
      t.report = std::move(hit->report);
      t.mapped = std::move(hit->mapped);
      t.report_until = hit->expires;
    } else {
      const bool may_fetch = fetch_rounds_ < revocation::kMaxFetchRounds;
      // Validated at this request's time; a time other than the store's (verify --at) fetches
      // nothing (revocation::validate).
      revocation::Validation v =
          revocation::validate(trust, store, t.leaf.get(), t.presented_chain(), may_fetch, now, in_.detail);
      if (!v.needs.empty()) {
        ++fetch_rounds_;
        fetches_ = std::move(v.needs);
        return nullptr;
      }
      tls::chain_checks().validated.fetch_add(1, std::memory_order_relaxed);
      // A failure stays a failure until the configuration or the revocation store changes; a
      // success ends with the certificates and revocation data it relied on. An unknown status
      // is no verdict on the certificate: refused (or, with soft_fail, accepted without being
      // cached), its connection asks again once a fetch may succeed (retry_seconds), as a new
      // connection would, so a client holding its connection open is not refused for ever.
      t.report_until = INT64_MAX;
      if (v.report.fault == auth::ChainFault::RevocationUnknown)
        t.report_until = now + trust.options().retry_seconds;
      if (v.report.fault == auth::ChainFault::None) {
        t.report_until = pki::ValidationCache::lifetime(trust, t.leaf.get(), t.presented_chain(), now, v.valid_until);
        if (v.soft_failed) {
          spdlog::warn("site \"{}\": {}", site.cfg.name, v.report.reason);
          t.report_until = std::min<std::int64_t>(t.report_until, now + trust.options().retry_seconds);
        } else if (cache) {
          cache->remember(t.chain_key, v.report, now, t.report_until, epoch);
        }
      }
      t.report = std::move(v.report);
    }
  }
  t.report_epoch = epoch;
  return &*t.report;
}

// One-to-one / many-to-one: computed once per connection and configuration generation.
const auth::Outcome& RequestState::mapping() {
  tls::TlsFacts& t = *in_.tls;
  if (!t.mapped) {
    t.mapped = auth::map_certificate(in_.site->auth, t.leaf_facts());
    if (!t.chain_key.empty() && in_.trust == in_.site->trust.get())
      in_.site->validations->remember_mapping(t.chain_key, *t.mapped);
  }
  return *t.mapped;
}

Need RequestState::advance() {
  if (waiting_ == Need::Directory || waiting_ == Need::Password || waiting_ == Need::Certificate)
    throw std::logic_error("pipeline: advance() before the need was met");
  waiting_ = Need::None;
  const runtime::SiteRuntime& site = *in_.site;
  const auth::LocationPolicy& policy = *in_.policy;
  if (stage_ == Stage::Chain) {
    if (!ev_.cert_presented && policy.ssl_flags.negotiates() && in_.tls && in_.tls->on_demand &&
        !in_.tls->cert_requested)
      return waiting_ = Need::Certificate;
    if (ev_.cert_presented && policy.ssl_flags.negotiates()) {
      ev_.chain = chain_report();
      if (!ev_.chain) return waiting_ = Need::Revocation;
    }
    stage_ = Stage::Mapping;
  }
  if (stage_ == Stage::Mapping) {
    stage_ = Stage::Password;
    if (ev_.chain && ev_.chain->fault == auth::ChainFault::None) {
      // Unmapped, the core still vouches for the certificate this location validated (forwarded
      // for the backend to map) given its facts.
      if (!site.auth.mapping_enabled) ev_.cert = &in_.tls->leaf_facts();
      else {
        ev_.mapped = &mapping();
        if (auth::defers_to_directory(site.auth, *ev_.mapped)) {
          ev_.cert = &in_.tls->leaf_facts();
          stage_ = Stage::Directory;
        }
      }
    }
  }
  if (stage_ == Stage::Directory) {
    tls::TlsFacts& t = *in_.tls;
    if (!directory_met_ && (!t.directory_mapped || t.directory_until_ms <= in_.clock->steady_ms())) {
      auto hit = site.directory->cached(*ev_.cert);
      if (!hit) return waiting_ = Need::Directory;
      t.directory_mapped = std::move(hit->outcome);
      t.directory_until_ms = hit->expires_ms;
    }
    ev_.mapped = t.directory_mapped.get();
    stage_ = Stage::Password;
  }
  if (stage_ == Stage::Password) {
    stage_ = Stage::Decide;
    // Basic credentials matter only where Basic or two-factor can use them.
    if (site.auth.basic_enabled || policy.require_password) {
      std::optional<http::BasicCredentials> creds;
      if (http::is_basic(in_.authorization)) {
        creds = http::parse_basic(in_.authorization);
        ev_.basic = auth::PasswordCheck::Invalid;
      } else if (in_.offer_mapped_user_password && policy.require_password && ev_.mapped &&
                 ev_.mapped->allowed()) {
        creds = http::BasicCredentials{ev_.mapped->user, {}};
        ev_.basic = auth::PasswordCheck::Invalid;
      }
      if (creds) {
        ev_.basic_user = creds->user;
        auto it = site.basic_users.find(auth::fold(creds->user));
        // A user name the file does not hold costs the same check, against another user's
        // hash and never right: how long the answer takes must not tell which names exist.
        password_user_known_ = it != site.basic_users.end();
        if (!password_user_known_) it = site.basic_users.begin();
        if (it != site.basic_users.end()) {
          password_.cache_key = http::password_cache_key(creds->user, creds->password, it->second);
          password_.hash = it->second;
          password_.password = std::move(creds->password);
          password_asked_ = password_user_known_;
          return waiting_ = Need::Password;
        }
        OPENSSL_cleanse(creds->password.data(), creds->password.size());
      }
    }
  }
  if (stage_ == Stage::Decide) {
    outcome_ = auth::decide(policy, ev_);
    stage_ = Stage::Done;
  }
  return Need::None;
}

void RequestState::directory_answered(directory::Mapped answer) {
  tls::TlsFacts& t = *in_.tls;
  t.directory_mapped = std::move(answer.outcome);
  t.directory_until_ms = answer.expires_ms;
  directory_met_ = true;
  if (waiting_ == Need::Directory) waiting_ = Need::None;
}

void RequestState::certificate_answered() {
  ev_.cipher_bits = in_.tls->cipher_bits;
  ev_.cert_requested = true;
  ev_.cert_presented = in_.tls->leaf != nullptr;
  if (waiting_ == Need::Certificate) waiting_ = Need::None;
}

void RequestState::use_certificate(tls::TlsFacts* facts) {
  in_.tls = facts;
  certificate_answered();
}

void RequestState::certificate_unavailable(std::string reason) {
  outcome_ = auth::certificate_unobtainable(std::move(reason));
  stage_ = Stage::Done;
  if (waiting_ == Need::Certificate) waiting_ = Need::None;
}

void RequestState::password_checked(bool ok) {
  ev_.basic = ok && password_user_known_ ? auth::PasswordCheck::Valid : auth::PasswordCheck::Invalid;
  if (waiting_ == Need::Password) waiting_ = Need::None;
}

void run_to_decision(RequestState& state, const std::optional<std::string>& password, SyncTrace* trace) {
  const Inputs& in = state.inputs();
  for (;;) {
    switch (state.advance()) {
      case Need::None: return;
      case Need::Revocation:  // only asked for with a store
        in.store->fetch_and_wait(state.take_fetches());
        break;
      case Need::Directory: {
        // The searches the server's directory workers run, made here and now (no cache).
        const auto& service = *in.site->directory;
        const auth::CertFacts& facts = in.tls->leaf_facts();
        directory::LdapConnection conn(service.settings());
        auto plan = auth::directory_plan(facts, service.policy());
        auth::DirectoryAnswer answer = conn.lookup(plan);
        auto outcome = std::make_shared<const auth::Outcome>(auth::judge_directory(facts, answer, service.naming()));
        state.directory_answered(directory::Mapped{std::move(outcome), 0});
        if (trace) {
          trace->directory_plan = std::move(plan);
          trace->directory_answer = std::move(answer);
        }
        break;
      }
      case Need::Certificate:  // explain and verify present their certificate up front
        state.certificate_unavailable("no certificate was presented");
        break;
      case Need::Password: {
        PasswordCheck job = state.take_password();
        const bool offered = job.password.empty() && in.offer_mapped_user_password && !password;
        bool ok = true;
        if (offered) {
          if (trace) trace->password_assumed = true;
        } else {
          ok = http::check_password(std::string(job.hash), password && job.password.empty() ? *password : job.password);
        }
        OPENSSL_cleanse(job.password.data(), job.password.size());
        state.password_checked(ok);
        break;
      }
    }
  }
}

}  // namespace certgate::pipeline
