#include "tls/tls_facts.hpp"

#include "pki/cert_facts.hpp"
#include "tls/server_context.hpp"

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

void TlsFacts::take_late_certificate(SSL* ssl) {
  TlsFacts f = from_handshake(ssl);
  // The session's saved key (restored_chain) describes the handshake's certificate, not this one.
  f.chain_key.clear();
  f.chain_der.clear();
  f.cert_requested = true;
  f.on_demand = on_demand;
  if (f.sni.empty()) f.sni = std::move(sni);
  *this = std::move(f);
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

TlsFacts TlsFacts::from_certificates(const std::vector<pki::X509Ptr>& certs, bool cert_requested) {
  TlsFacts f;
  f.tls = true;
  f.cipher_bits = 256;
  f.cert_requested = cert_requested;
  if (certs.empty()) return f;
  X509_up_ref(certs[0].get());
  f.leaf.reset(certs[0].get());
  f.chain.reset(sk_X509_new_null());
  for (std::size_t i = 1; i < certs.size(); ++i) {
    X509_up_ref(certs[i].get());
    sk_X509_push(f.chain.get(), certs[i].get());
  }
  return f;
}

void TlsFacts::forget_decisions() {
  report.reset();
  mapped.reset();
  directory_mapped.reset();
  directory_until_ms = 0;
}

const auth::CertFacts& TlsFacts::leaf_facts() {
  if (!facts) facts = std::make_unique<auth::CertFacts>(pki::cert_facts(leaf.get()));
  return *facts;
}

}  // namespace certgate::tls
