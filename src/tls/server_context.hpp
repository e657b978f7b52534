#pragma once
// TLS server contexts: one SSL_CTX per binding, with the site's certificate, the site's trusted
// issuer names in the CertificateRequest, and a verify hook that records instead of rejecting
// (the HTTP layer answers with a readable 403.x page; spec: behaviour.md §1 step 6).
#include "pki/openssl_ptr.hpp"
#include "runtime/snapshot.hpp"

#include <string>
#include <vector>

namespace certgate::tls {

struct BuiltContext {
  pki::SslCtxPtr ctx;
  std::vector<std::string> warnings;
};

// Throws runtime::CompileError naming the site, binding and file.
BuiltContext make_server_context(const runtime::SiteRuntime& site, const config::Binding& binding,
                                 std::uint64_t generation);

// Installs the ClientHello hook that picks a route by SNI on every context of the listener.
// The listener must outlive those contexts (both belong to one Snapshot).
void attach_sni_router(runtime::ListenerRuntime& listener);

// The route the ClientHello hook chose for this connection (null before the hello).
const runtime::ListenerRuntime::Route* selected_route(const SSL* ssl);
// Resumption: a resumed session has the client's leaf but not the chain it sent. The chain is
// kept in the session's ticket data (encrypted and authenticated with the ticket key) and in
// the cached session; it is only an untrusted pool, validated again like any presented chain.
void save_presented_chain(SSL* ssl);
pki::X509StackPtr restored_chain(SSL* ssl);

// The SNI name the client sent ("" when none), lower case.
std::string sni_name(const SSL* ssl);

}  // namespace certgate::tls
