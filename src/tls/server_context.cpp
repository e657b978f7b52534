#include "tls/server_context.hpp"

#include "pki/key_decoding.hpp"
#include "pki/load.hpp"
#include "pki/validation_cache.hpp"
#include "pki/x509_text.hpp"
#include "tls/on_demand.hpp"
#include "tls/session_cache.hpp"
#include "tls/ticket_keys.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>

namespace certgate::tls {
namespace {

int ticket_generated(SSL* ssl, void*);
SSL_TICKET_RETURN ticket_decrypted(SSL*, SSL_SESSION*, const unsigned char*, size_t, SSL_TICKET_STATUS, void*);

int route_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}
int sni_index() {
  static const int idx = SSL_get_ex_new_index(
      0, nullptr, nullptr, nullptr,
      [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<std::string*>(ptr); });
  return idx;
}

// Record-only: the chain is judged after the handshake, against the site chosen by SNI, so a
// bad certificate gets a 403.16 page instead of a TLS alert. Skipping OpenSSL's own chain walk
// here also keeps the handshake cheap (validation runs once, when a request needs it).
int accept_any_chain(X509_STORE_CTX*, void*) { return 1; }

bool is_pkcs12(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".pfx" || ext == ".p12";
}

std::string parse_sni(SSL* ssl) {
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 5)
    return "";
  size_t list = (size_t{p[0]} << 8) | p[1];
  if (list + 2 != len) return "";
  size_t off = 2;
  while (off + 3 <= len) {
    unsigned type = p[off];
    size_t n = (size_t{p[off + 1]} << 8) | p[off + 2];
    off += 3;
    if (off + n > len) return "";
    if (type == TLSEXT_NAMETYPE_host_name) {
      std::string name(reinterpret_cast<const char*>(p + off), n);
      if (name.find('\0') != std::string::npos) return "";
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      return name;
    }
    off += n;
  }
  return "";
}

int client_hello_router(SSL* ssl, int* alert, void* arg) {
  // A renegotiation's ClientHello (on demand, tls/on_demand.hpp) stays on the site and verify
  // mode the connection has: no new SNI may move it to another site's context mid-connection.
  if (SSL_get_ex_data(ssl, route_index()) != nullptr) return SSL_CLIENT_HELLO_SUCCESS;
  note_client_hello(ssl);
  auto* listener = static_cast<const runtime::ListenerRuntime*>(arg);
  std::string sni = parse_sni(ssl);
  const auto* route = listener->route_for_host(sni);
  if (route == nullptr) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_CLIENT_HELLO_ERROR;
  }
  if (SSL_get_SSL_CTX(ssl) != route->ctx) SSL_set_SSL_CTX(ssl, route->ctx);
  // SSL_set_SSL_CTX does not carry the verify mode over; the CA list follows the context.
  SSL_set_verify(ssl, SSL_CTX_get_verify_mode(route->ctx), nullptr);
  SSL_set_ex_data(ssl, route_index(), const_cast<runtime::ListenerRuntime::Route*>(route));
  if (!sni.empty()) SSL_set_ex_data(ssl, sni_index(), new std::string(std::move(sni)));
  return SSL_CLIENT_HELLO_SUCCESS;
}

// The certificates the client sent after its leaf, as [u32 length][DER]...
std::string encode_chain(STACK_OF(X509) * chain) {
  std::string out;
  for (int i = 0; chain && i < sk_X509_num(chain); ++i) {
    unsigned char* der = nullptr;
    int n = i2d_X509(sk_X509_value(chain, i), &der);
    if (n <= 0) continue;
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xff);
    out.append(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
  }
  return out;
}

int ticket_generated(SSL* ssl, void*) {
  save_presented_chain(ssl);
  return 1;
}

SSL_TICKET_RETURN ticket_decrypted(SSL*, SSL_SESSION*, const unsigned char*, size_t, SSL_TICKET_STATUS status, void*) {
  switch (status) {  // OpenSSL's own choices; the callback exists only for ticket_generated
    case SSL_TICKET_SUCCESS: return SSL_TICKET_RETURN_USE;
    case SSL_TICKET_SUCCESS_RENEW: return SSL_TICKET_RETURN_USE_RENEW;
    case SSL_TICKET_EMPTY:
    case SSL_TICKET_NO_DECRYPT: return SSL_TICKET_RETURN_IGNORE_RENEW;
    default: return SSL_TICKET_RETURN_IGNORE;
  }
}

}  // namespace

constexpr char kSessionChainVersion = 2;

std::string save_presented_chain(SSL* ssl) {
  SSL_SESSION* session = SSL_get_session(ssl);
  X509* leaf = SSL_get0_peer_certificate(ssl);
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  // A resumed session has no peer chain (it is not serialized); the ticket it issues is a copy
  // of the session that already carries the data. Only a full handshake writes it.
  if (!session || !leaf || !chain) return "";
  if (auto saved = restored_chain(ssl)) return saved->key;  // the ticket callback already did
  std::string key = pki::ValidationCache::key(leaf, chain);
  std::string data(1, kSessionChainVersion);
  data += key;
  // Only a ticket has to carry the chain: with the server-side cache (SSL_OP_NO_TICKET) a
  // resumed connection gets the cached session object itself, chain included.
  if (!(SSL_get_options(ssl) & SSL_OP_NO_TICKET)) data += encode_chain(chain);
  SSL_SESSION_set1_ticket_appdata(session, data.data(), data.size());
  return key;
}

std::optional<SessionChain> restored_chain(SSL* ssl) {
  void* data = nullptr;
  size_t len = 0;
  SSL_SESSION* session = SSL_get_session(ssl);
  if (!session || SSL_SESSION_get0_ticket_appdata(session, &data, &len) != 1) return std::nullopt;
  const std::size_t key_len = 32;
  const auto* p = static_cast<const char*>(data);
  if (len < 1 + key_len || p[0] != kSessionChainVersion) return std::nullopt;  // older format
  return SessionChain{std::string(p + 1, key_len), std::string(p + 1 + key_len, len - 1 - key_len)};
}

pki::X509StackPtr decode_chain(std::string_view bytes) {
  pki::X509StackPtr chain(sk_X509_new_null());
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t len = bytes.size();
  std::size_t off = 0;
  while (off + 4 <= len) {
    std::size_t n = (std::size_t{p[off]} << 24) | (std::size_t{p[off + 1]} << 16) |
                    (std::size_t{p[off + 2]} << 8) | p[off + 3];
    off += 4;
    if (off + n > len) break;
    const unsigned char* der = p + off;
    if (X509* x = d2i_X509(nullptr, &der, static_cast<long>(n))) sk_X509_push(chain.get(), x);
    off += n;
  }
  return chain;
}

const runtime::ListenerRuntime::Route* selected_route(const SSL* ssl) {
  return static_cast<const runtime::ListenerRuntime::Route*>(SSL_get_ex_data(ssl, route_index()));
}

std::string sni_name(const SSL* ssl) {
  auto* s = static_cast<const std::string*>(SSL_get_ex_data(ssl, sni_index()));
  return s ? *s : std::string();
}

namespace {
// ALPN lists in wire format, in the binding's order of preference: static, so the callback's
// argument outlives every context.
constexpr unsigned char kH2First[] = "\x02h2\x08http/1.1";
constexpr unsigned char kH1First[] = "\x08http/1.1\x02h2";
constexpr unsigned char kH2Only[] = "\x02h2";
constexpr unsigned char kH1Only[] = "\x08http/1.1";

// The binding's first protocol the client also offers. A client offering ALPN but none of the
// binding's protocols is refused (no_application_protocol, RFC 7301 §3.2) rather than served a
// protocol it did not ask for; a client without ALPN speaks HTTP/1.1.
int select_protocol(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                    unsigned int inlen, void* arg) {
  const auto* list = static_cast<const unsigned char*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, list, static_cast<unsigned>(std::char_traits<char>::length(
                                                         reinterpret_cast<const char*>(list))),
                            in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

const unsigned char* alpn_list(const std::vector<std::string>& protocols) {
  const bool h2 = std::find(protocols.begin(), protocols.end(), "h2") != protocols.end();
  const bool h1 = std::find(protocols.begin(), protocols.end(), "http/1.1") != protocols.end();
  if (h2 && h1) return protocols.front() == "h2" ? kH2First : kH1First;
  return h2 ? kH2Only : kH1Only;
}
}  // namespace

BuiltContext make_server_context(const runtime::SiteRuntime& site, const config::Binding& b,
                                 const config::ServerSettings& server, const runtime::Clock& clock,
                                 std::shared_ptr<const TicketKeyFiles> ticket_keys) {
  BuiltContext out;
  const std::string where = "site \"" + site.cfg.name + "\" binding " + b.listen +
                            (b.host.empty() ? "" : " (" + b.host + ")") + ": ";
  out.ctx.reset(SSL_CTX_new(TLS_server_method()));
  SSL_CTX* ctx = out.ctx.get();
  if (!ctx) throw runtime::CompileError(where + "cannot create TLS context: " + pki::openssl_errors());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Security level 2 whatever the OpenSSL build or openssl.cnf says (Debian's default, not
  // upstream's): the server's own key and chain ≥ 2048-bit RSA / P-256, no SHA-1 signatures.
  // The client's chain is judged after the handshake (pki/chain_verify.cpp: min_rsa_bits,
  // allow_sha1), so a weak client certificate gets a readable 403.16, not a TLS alert.
  SSL_CTX_set_security_level(ctx, 2);
  // By default TLS 1.2 without static-RSA key exchange (no forward secrecy, Bleichenbacher-style
  // oracles). A list that brings it back also needs RSA decryption with the TLS padding, which the
  // built-in RSA key method does not do: RSA keys then leave the fast path (pki/key_decoding.hpp).
  if (SSL_CTX_set_cipher_list(ctx, server.ciphers.c_str()) != 1)
    throw runtime::CompileError("server.ciphers: \"" + server.ciphers +
                                "\" selects no TLS 1.2 cipher OpenSSL knows: " + pki::openssl_errors());
  STACK_OF(SSL_CIPHER)* enabled = SSL_CTX_get_ciphers(ctx);
  for (int i = 0; i < sk_SSL_CIPHER_num(enabled); ++i)
    if (SSL_CIPHER_get_kx_nid(sk_SSL_CIPHER_value(enabled, i)) == NID_kx_rsa) {
      pki::stop_builtin_rsa_methods();
      break;
    }
  // Client-initiated renegotiation is a CPU-exhaustion vector and nothing here needs it yet.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_alpn_select_cb(ctx, select_protocol, const_cast<unsigned char*>(alpn_list(b.protocols)));
  // A resumed session brings back the client's leaf but not the chain it sent (a decoded
  // session keeps none), so the chain's key and DER travel in the session's ticket data (see
  // save_presented_chain); a cached session object still has both.
  SSL_CTX_set_session_ticket_cb(ctx, ticket_generated, ticket_decrypted, nullptr);
  // SECURITY: the client's Certificate message is read whole, then kept decoded with the
  // session (and in its ticket): its size is what a client can make each session cost. Over
  // the limit the handshake fails with an alert; the connection logs why (see
  // client_cert_list_too_long).
  SSL_CTX_set_max_cert_list(ctx, static_cast<long>(server.max_client_cert_list_bytes));
  // One ticket is enough for a returning client.
  SSL_CTX_set_num_tickets(ctx, 1);
  if (server.session_resumption == config::SessionResumption::Cache) {
    use_shared_session_cache(ctx, server.session_cache_size, server.session_cache_bytes,
                             server.session_timeout_seconds, clock);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);  // TLS 1.2 clients without tickets
    // OpenSSL's own cache cannot weigh its sessions: bound the count so that even sessions
    // whose client sent the largest certificate list allowed fit in session_cache_bytes.
    const std::size_t worst = largest_session_bytes(server.max_client_cert_list_bytes);
    SSL_CTX_sess_set_cache_size(
        ctx, static_cast<long>(std::max<std::size_t>(1, std::min(server.session_cache_size,
                                                                 server.session_cache_bytes / worst))));
    SSL_CTX_set_timeout(ctx, static_cast<long>(server.session_timeout_seconds));
    if (ticket_keys) use_ticket_key_files(ctx, std::move(ticket_keys));
    else use_rotating_ticket_keys(ctx, clock);
  }

  pki::KeyAndChain id;
  try {
    id = is_pkcs12(b.certificate) ? pki::load_pkcs12(b.certificate, b.pfx_password)
                                  : pki::load_pem_identity(b.certificate,
                                                           b.key.empty() ? b.certificate : b.key);
  } catch (const pki::LoadError& e) {
    throw runtime::CompileError(where + e.what());
  }
  STACK_OF(X509)* chain = sk_X509_new_null();
  for (auto& c : id.chain) sk_X509_push(chain, c.release());
  if (SSL_CTX_use_cert_and_key(ctx, id.cert.get(), id.key.get(), chain, 1) != 1) {
    sk_X509_pop_free(chain, X509_free);
    throw runtime::CompileError(where + "certificate and key rejected: " + pki::openssl_errors());
  }
  sk_X509_pop_free(chain, X509_free);

  // SECURITY: the session id context names the site, so a session (and the client
  // certificate it carries) is never resumed on another site. It may be resumed after a
  // reload: nothing is trusted from the session but the certificates themselves, which the new
  // generation validates and maps again (its caches start empty).
  std::string sid_src = "certgate site\0" + site.cfg.name;
  unsigned char sid[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(sid_src.data()), sid_src.size(), sid);
  SSL_CTX_set_session_id_context(ctx, sid, SSL_MAX_SID_CTX_LENGTH);

  if (site.requests_certificate) {
    // On demand: nothing asked at the handshake; the connection asks (post-handshake
    // authentication or renegotiation, tls/on_demand.hpp) with this callback and CA list.
    SSL_CTX_set_verify(ctx, b.on_demand ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_cert_verify_callback(ctx, accept_any_chain, nullptr);
    if (site.cfg.client_certificates.send_ca_list && site.trust) {
      STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
      std::size_t encoded = 0;
      auto name = [&](X509* ca) {
        X509_NAME* n = X509_NAME_dup(X509_get_subject_name(ca));
        encoded += static_cast<std::size_t>(i2d_X509_NAME(n, nullptr)) + 2;
        sk_X509_NAME_push(names, n);
      };
      for (const auto& a : site.trust->anchors()) name(a.get());
      // A browser offers only certificates whose chain it can link to a name in this list; a
      // leaf whose issuing CA is not installed links to nothing above it, so that CA is named too.
      if (site.cfg.client_certificates.ca_list_intermediates)
        if (STACK_OF(X509)* more = site.trust->intermediates())
          for (int i = 0; i < sk_X509_num(more); ++i) name(sk_X509_value(more, i));
      SSL_CTX_set_client_CA_list(ctx, names);
      // spec: behaviour.md §2 (Schannel event 36885): warn, never truncate.
      if (encoded > 16384)
        out.warnings.push_back(where + "the trusted issuer list sent to clients is " +
                               std::to_string(encoded) +
                               " bytes (over 16 KiB); some clients fail the handshake. Trust "
                               "fewer CAs or set client_certificates.send_ca_list = false");
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return out;
}

void attach_sni_router(runtime::ListenerRuntime& listener) {
  for (auto& r : listener.routes) SSL_CTX_set_client_hello_cb(r.ctx, client_hello_router, &listener);
}

}  // namespace certgate::tls
