#include "tls/tls_facts.hpp"

#include "auth/decide.hpp"
#include "pki/cert_facts.hpp"
#include "pki/chain_verify.hpp"
#include "revocation/online.hpp"
#include "runtime/snapshot.hpp"
#include "tls/server_context.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

namespace certgate::tls {

TlsFacts TlsFacts::from_handshake(SSL* ssl) {
  TlsFacts f;
  f.tls = true;
  f.protocol = SSL_get_version(ssl);
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
  if (c) {
    f.cipher = SSL_CIPHER_get_name(c);
    f.cipher_bits = SSL_CIPHER_get_bits(c, nullptr);
  }
  f.sni = sni_name(ssl);
  f.cert_requested = (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0;
  f.leaf.reset(SSL_get1_peer_certificate(ssl));
  // On a server the peer chain excludes the leaf.
  if (STACK_OF(X509)* sent = SSL_get_peer_cert_chain(ssl)) {
    f.chain.reset(X509_chain_up_ref(sent));
    // Read, never written here: by now the session may be shared (with session_resumption =
    // "tickets", OpenSSL's own cache holds a TLS 1.2 session of a client that takes no ticket,
    // and another loop may be resuming it). Where nothing was saved, the key is computed when
    // first needed.
    if (auto saved = restored_chain(ssl)) f.chain_key = std::move(saved->key);
  } else if (f.leaf && SSL_session_reused(ssl)) {
    if (auto saved = restored_chain(ssl)) {
      f.chain_key = std::move(saved->key);
      f.chain_der = std::move(saved->der);
    }
  }
  return f;
}

STACK_OF(X509) * TlsFacts::presented_chain() {
  if (!chain && !chain_der.empty()) {
    chain = decode_chain(chain_der);
    chain_der.clear();
  }
  return chain.get();
}

ChainChecks& chain_checks() {
  static ChainChecks counts;
  return counts;
}

const auth::ChainReport* TlsFacts::report_for(const runtime::SiteRuntime& site, revocation::Store* store,
                                              std::vector<revocation::Need>& needs) {
  const std::uint64_t epoch = store ? store->epoch() : 0;
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  if (report && report_epoch == epoch && now < report_until) return &*report;
  report.reset();
  if (!site.trust) {
    report = auth::ChainReport{auth::ChainFault::UntrustedRoot,
                               "site \"" + site.cfg.name + "\" trusts no certificate issuer",
                               {}};
    report_until = INT64_MAX;
  } else {
    if (chain_key.empty()) chain_key = pki::ValidationCache::key(leaf.get(), presented_chain());
    const std::string& key = chain_key;
    if (auto hit = site.validations->find(key, now, epoch)) {
      chain_checks().cached.fetch_add(1, std::memory_order_relaxed);
      report = std::move(hit->report);
      mapped = std::move(hit->mapped);
      report_until = hit->expires;
    } else {
      const bool may_fetch = fetch_rounds < revocation::kMaxFetchRounds;
      revocation::Validation v =
          revocation::validate(*site.trust, store, leaf.get(), presented_chain(), may_fetch);
      if (!v.needs.empty()) {
        ++fetch_rounds;
        needs = std::move(v.needs);
        return nullptr;
      }
      chain_checks().validated.fetch_add(1, std::memory_order_relaxed);
      // A failure stays a failure until the configuration or the revocation store changes; a
      // success ends with the certificates and revocation data it relied on. An unknown status
      // is no verdict on the certificate: refused (or, with soft_fail, accepted without being
      // cached), its connection asks again once a fetch may succeed (retry_seconds), as a new
      // connection would, so a client holding its connection open is not refused for ever.
      report_until = INT64_MAX;
      if (v.report.fault == auth::ChainFault::RevocationUnknown)
        report_until = now + site.trust->options().retry_seconds;
      if (v.report.fault == auth::ChainFault::None) {
        report_until = pki::ValidationCache::lifetime(*site.trust, leaf.get(), presented_chain(), now,
                                                      v.valid_until);
        if (v.soft_failed) {
          spdlog::warn("site \"{}\": {}", site.cfg.name, v.report.reason);
          report_until = std::min<std::int64_t>(report_until, now + site.trust->options().retry_seconds);
        } else {
          site.validations->remember(key, v.report, now, report_until, epoch);
        }
      }
      report = std::move(v.report);
    }
  }
  report_epoch = epoch;
  fetch_rounds = 0;
  return &*report;
}

void TlsFacts::forget_decisions() {
  report.reset();
  mapped.reset();
  directory_mapped.reset();
  directory_until_ms = 0;
  directory_once = false;
  fetch_rounds = 0;
}

const auth::Outcome& TlsFacts::mapping_for(const runtime::SiteRuntime& site) {
  if (!mapped) {
    mapped = auth::map_certificate(site.auth, leaf_facts());
    if (!chain_key.empty()) site.validations->remember_mapping(chain_key, *mapped);
  }
  return *mapped;
}

const auth::CertFacts& TlsFacts::leaf_facts() {
  if (!facts) facts = std::make_unique<auth::CertFacts>(pki::cert_facts(leaf.get()));
  return *facts;
}

}  // namespace certgate::tls
