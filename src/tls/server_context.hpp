#pragma once
// TLS server contexts: one SSL_CTX per binding, with the site's certificate, the site's trusted
// issuer names in the CertificateRequest, and a verify hook that records instead of rejecting
// (the HTTP layer answers with a readable 403.x page; spec: behaviour.md §1 step 6).
#include "pki/openssl_ptr.hpp"
#include "runtime/snapshot.hpp"
#include "tls/ticket_keys.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::tls {

struct BuiltContext {
  pki::SslCtxPtr ctx;
  std::vector<std::string> warnings;
};

// Throws runtime::CompileError naming the site, binding and file. `ticket_keys`: the
// generation's ticket_key_files (null: keys made in memory).
BuiltContext make_server_context(const runtime::SiteRuntime& site, const config::Binding& binding,
                                 const config::ServerSettings& server, const runtime::Clock& clock,
                                 std::shared_ptr<const TicketKeyFiles> ticket_keys = nullptr);

// Installs the ClientHello hook that picks a route by SNI on every context of the listener.
// The listener must outlive those contexts (both belong to one Snapshot).
void attach_sni_router(runtime::ListenerRuntime& listener);

// The route the ClientHello hook chose for this connection (null before the hello).
const runtime::ListenerRuntime::Route* selected_route(const SSL* ssl);
// Resumption: a resumed session has the client's leaf but not the chain it sent. The session's
// ticket data (encrypted and authenticated with the ticket key; also kept in the server's
// session cache) carries the chain's validation-cache key and the chain as DER. A returning
// client is then recognised by the key alone: the chain is decoded only when the validation
// cache has no answer for it, or a backend asks for the chain. The chain is only an untrusted
// pool, validated like any presented chain.
struct SessionChain {
  std::string key;  // pki::ValidationCache::key of leaf + chain
  std::string der;  // [u32 length][DER]... of the certificates after the leaf (tickets only)
};
// Saves it for `ssl`'s session and returns the key ("" without a peer certificate). Only while
// the session is this connection's alone (the ticket and new-session callbacks): once shared,
// another loop may be reading it.
std::string save_presented_chain(SSL* ssl);
std::optional<SessionChain> restored_chain(SSL* ssl);
pki::X509StackPtr decode_chain(std::string_view der);

// The SNI name the client sent ("" when none), lower case.
std::string sni_name(const SSL* ssl);

}  // namespace certgate::tls
