#pragma once
// One request, from parsed message to answer: routes it (target, Host, site, request
// filtering), has the evidence pipeline (pipeline/evidence.hpp) decide it, and either answers an
// error page or hands a static-file or proxy job on. No sockets here.
#include "auth/verdict.hpp"
#include "http/message.hpp"
#include "http/path.hpp"
#include "http/static_files.hpp"
#include "pipeline/evidence.hpp"
#include "runtime/snapshot.hpp"
#include "tls/tls_facts.hpp"
#include "token/session.hpp"

#include <array>
#include <optional>

namespace certgate::http {

struct ConnectionInfo {
  const runtime::Snapshot& snap;
  const runtime::ListenerRuntime& listener;
  const runtime::SiteRuntime& site;
  tls::TlsFacts* tls = nullptr;  // null on a plain-HTTP binding
  bool client_is_local = false;
  revocation::Store* revocation = nullptr;  // the process's revocation cache (null: local CRLs only)
  const runtime::Clock* clock = &runtime::system_clock();
  std::string_view request_id;  // shown on error pages (the W3C log's x-request-id)
  // The connection's token-login cookie memory (null: not offered). At a location with
  // token_login = true, a valid cookie stands for a client certificate the TLS handshake lacks.
  token::CookieSession* cookie = nullptr;
  std::uint64_t generation = 0;
};

// The reserved token-login endpoints (/.certgate/token/...), answered by the connection.
enum class TokenEndpoint : std::uint8_t { Challenge, Response };

// Forward to a backend (http/proxy_exchange.hpp carries it out).
struct ProxyPlan {
  const config::BackendUrl* backend = nullptr;
  std::string backend_key;  // as configured: names the connection pool
  std::string target;       // origin-form: the path the policy matched, re-encoded, and the query
  std::string host;         // the request's authority (absolute-form target, else Host)
  bool websocket = false;
  // What the backend's 101 must carry as Sec-WebSocket-Accept (RFC 6455 §4.2.2): proof that it
  // performed the WebSocket handshake, rather than echoing a status it was given.
  std::string websocket_accept;
  bool strip_authorization = false;  // certgate used the Basic credentials itself
  // Added when the backend's answer has no Cache-Control (an authenticated request's policy).
  std::string_view cache_control;
  // The client certificate, only when the decision validated and mapped it (null otherwise).
  X509* leaf = nullptr;
  STACK_OF(X509)* chain = nullptr;
  // certgate's own session cookies at this site (token login, step-up): bearer credentials for
  // the whole site, taken out of the Cookie header the backend receives.
  std::array<std::string_view, 2> own_cookies;
};

struct Handled {
  Response response;                     // the answer, unless a job is set
  std::optional<StaticRequest> static_job;  // to run on the file pool
  std::optional<ProxyPlan> proxy;           // to forward, with the caller's identity
  std::optional<TokenEndpoint> token;       // the connection runs it (docs/token-login.md)
  // Not decided yet: meet the pipeline's need (Routed::state), then resume().
  pipeline::Need need = pipeline::Need::None;
  auth::Outcome outcome;                 // who the caller is (user, method) or why denied
  std::size_t site = 0;  // the site that answered: the TLS connection's, or (plain HTTP) the Host's
  // A step-up ticket to issue or take in the single-use store ([server.state]) before `response`
  // may go out (http/step_up.hpp): the caller runs it, then step_up_after_store().
  struct SingleUse {
    bool issue = false;  // false: consume
    std::string key;
  };
  std::optional<SingleUse> single_use;
  // The decoded, normalised path the policy was decided on (its trailing '/' kept), for the W3C
  // log as IIS logs cs-uri-stem; empty when the target was refused before normalising.
  std::string path;
  // An authenticated answer's Cache-Control (into the configuration; empty = none).
  std::string_view cache_control;
};

// /.certgate/step-up on a step-up binding (http/step_up.hpp): the protected site, the return URL
// it signed, and the policy the certificate is decided by there (the return path's, requiring it).
struct StepUpBegin {
  const runtime::SiteRuntime* site = nullptr;
  std::string return_url;   // "https://host:port/path?query", checked
  std::string return_path;  // "/path?query"
  std::string state;        // the browser binding set by the protected site (see step_up.cpp)
  auth::LocationPolicy policy;
};

// A request routed and being decided: what routing found, and the evidence gathered so far.
// The caller keeps it (with the request) while a need is met.
struct Routed {
  std::optional<pipeline::RequestState> state;
  NormalizedTarget target;
  std::optional<std::string> forward;  // the backend's target, when proxied
  std::string_view authority;          // into the request
  const std::string* backend = nullptr;
  // On demand: the certificate a step-up cookie stood for (this request only), and the certificate
  // a step-up binding is deciding for a protected site (a copy: that site's decisions are not the
  // connection's).
  std::unique_ptr<tls::TlsFacts> late_facts;
  std::unique_ptr<StepUpBegin> step_up;
};

// On a plain-HTTP binding `conn.site` is ignored: every request goes to the site its Host names.
Handled handle(const ConnectionInfo& conn, const Request& req, Routed& routed);
// After handle() (or resume()) returned a need and it was met: decides and answers. `conn.site`
// is the site handle() returned.
Handled resume(const ConnectionInfo& conn, const Request& req, Routed& routed);

// Need::Certificate that only a step-up can meet: with [sites.step_up], the cookie's certificate
// (then resume()) or the redirect; without it, 403.7 saying why (then resume()).
// `why`: why the client cannot be asked ("TLS 1.3 without post-handshake authentication").
Handled step_up_or_refuse(const ConnectionInfo& conn, const Request& req, Routed& routed, const std::string& why);

// Error answer for a request that could not even be parsed (400, 408, 413, 414, 431), or that
// must not wait (503): the connection closes after it.
Response protocol_error(const ConnectionInfo& conn, auth::Verdict answer, std::string reason,
                        std::string_view accept = {});

// The error page for a decision that refused the request (its 401/403/500/503).
Response refusal(const ConnectionInfo& conn, const auth::Outcome& outcome, std::string_view accept);
// Any other answer of the catalogue, with its reason.
Response answer_error(const ConnectionInfo& conn, auth::Verdict answer, std::string reason, std::string_view accept);

// An error answer the proxy produced before the backend said anything (502.3, 504).
Response gateway_error(const ConnectionInfo& conn, auth::Verdict answer, std::string reason,
                       std::string_view accept);

// Turns an empty-bodied static error (404, 403.14, 416) into a full error page.
Response finish_static(const ConnectionInfo& conn, Response r, std::string_view accept);

}  // namespace certgate::http
