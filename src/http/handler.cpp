#include "http/handler.hpp"

#include "http/error_page.hpp"
#include "http/path.hpp"
#include "http/request_filter.hpp"
#include "pki/x509_text.hpp"
#include "http/step_up.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <utility>

namespace certgate::http {
namespace {

bool detailed_for(const ConnectionInfo& c) {
  switch (c.snap.cfg.server.detailed_errors) {
    case config::DetailedErrors::Always: return true;
    case config::DetailedErrors::Never: return false;
    case config::DetailedErrors::Local: return c.client_is_local;
  }
  return false;
}

// RFC 6455 §4.2.2: base64(SHA-1(key + GUID)).
std::string websocket_accept(std::string_view key) {
  std::string text(key);
  text += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), md);
  char out[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out), md, SHA_DIGEST_LENGTH);
  return std::string(out, static_cast<std::size_t>(n));
}

// What the page may say about this request: the details table for a detailed page, the
// accepted issuers on a 403.7 page (the CertificateRequest names them anyway, unless the site
// keeps its CA list to itself).
Response page(const ConnectionInfo& c, ErrorInfo e, std::string_view accept, const Request* req = nullptr,
              std::string_view path = {}, const auth::Outcome* o = nullptr) {
  const bool detailed = detailed_for(c);
  e.request_id = c.request_id;
  const auto& cc = c.site.cfg.client_certificates;
  if (e.status == 403 && e.substatus == 7 && cc.send_ca_list && c.site.trust) {
    for (const auto& a : c.site.trust->anchors()) e.issuers.push_back(pki::subject_text(a.get()));
    if (cc.ca_list_intermediates)
      if (STACK_OF(X509)* more = c.site.trust->intermediates())
        for (int i = 0; i < sk_X509_num(more); ++i) e.issuers.push_back(pki::subject_text(sk_X509_value(more, i)));
  }
  if (detailed) {
    ErrorDetails& d = e.details;
    if (req) {
      const std::string_view host = req->header("Host");
      d.url = std::string(c.tls ? "https://" : "http://") + std::string(host) +
              (req->target.empty() || req->target[0] == '/' ? req->target : std::string());
    }
    d.site = c.site.cfg.name;
    if (!path.empty()) {
      d.location = "/";
      for (auto it = c.site.locations.rbegin(); it != c.site.locations.rend(); ++it)
        if (runtime::path_in_location(path, it->path)) {
          d.location = it->cfg.path;
          break;
        }
      d.ssl_flags = auth::to_string(c.site.policy_for(path).ssl_flags);
    }
    if (o) {
      d.logon_method = o->auth_method;
      d.user = o->user;
    }
    if (c.tls && c.tls->leaf) {
      const X509* leaf = c.tls->leaf.get();
      d.cert_subject = pki::subject_text(leaf);
      d.cert_issuer = pki::issuer_text(leaf);
      d.cert_serial = pki::serial_hex(leaf);
      d.cert_validity = pki::utc_text(pki::to_unix(X509_get0_notBefore(leaf))) + " to " +
                        pki::utc_text(pki::to_unix(X509_get0_notAfter(leaf)));
    }
  }
  return error_response(e, detailed, page_format(accept), &c.site.error_pages);
}

Response error(const ConnectionInfo& c, auth::Verdict answer, std::string reason,
               std::string_view accept, const Request* req = nullptr, std::string_view path = {}) {
  return page(c, from_answer(answer, std::move(reason)), accept, req, path);
}

// Moved out of the target (no copy on the request path).
std::string logged_path(NormalizedTarget&& t) {
  if (t.trailing_slash) t.path += '/';
  return std::move(t.path);
}

}  // namespace

Response protocol_error(const ConnectionInfo& c, auth::Verdict answer, std::string reason,
                        std::string_view accept) {
  Response r = error(c, answer, std::move(reason), accept);
  r.close = true;
  return r;
}

namespace {
// These fill the caller's Handled in place: it is a large object (answer, jobs, outcome), and
// moving it from one to the next was a tenth of certgate's own work per keep-alive request.
void start(const ConnectionInfo& c, const Request& req, Routed& r, Handled& h);
void answer(const ConnectionInfo& c, const Request& req, Routed& r, Handled& h);

// A request decided (or refused before the pipeline ran): the path it was decided on, for the log.
void done(Handled& h, Routed& r) { h.path = logged_path(std::move(r.target)); }
}  // namespace

Handled handle(const ConnectionInfo& c, const Request& req, Routed& r) {
  // Nothing of an earlier request's decision survives into this one (the exchange is reused).
  r.state.reset();
  r.forward.reset();
  r.backend = nullptr;
  r.late_facts.reset();
  r.step_up.reset();
  Handled h;
  h.site = c.site.index;
  const std::string_view accept = req.header("Accept");
  auto form = split_target(req.target);
  auto target = form ? normalize_target(form->origin) : std::nullopt;
  if (!target) {
    h.response = protocol_error(c, auth::Verdict::Http400_BadRequest, "the request target is not a valid path", accept);
    return h;
  }
  // RFC 9112 §3.2: one Host, and a valid one; an absolute-form target's authority replaces it.
  std::size_t hosts = 0;
  std::string_view host_header;
  for (const auto& hd : req.headers)
    if (iequals(hd.name, "Host") && hosts++ == 0) host_header = hd.value;
  if (hosts > 1) {
    h.response = protocol_error(c, auth::Verdict::Http400_BadRequest, "the request has more than one Host header", accept);
    return h;
  }
  if (req.version >= 11 && hosts == 0) {
    h.response = protocol_error(c, auth::Verdict::Http400_BadRequest, "HTTP/1.1 requests must carry a Host header", accept);
    return h;
  }
  const std::string_view authority = form->absolute ? form->authority : host_header;
  const auto key = host_key(authority);
  if (!key) {
    h.response = protocol_error(c, auth::Verdict::Http400_BadRequest, "the request's host '" + std::string(authority) +
                                            "' is not a valid host name", accept);
    return h;
  }
  const auto* route = key->empty() ? c.listener.default_route() : c.listener.route_for_host(*key);
  r.target = std::move(*target);
  r.authority = authority;
  if (!c.tls) {
    // Plain HTTP has no handshake to choose the site: the Host does, for every request.
    if (!route) {
      h.response = error(c, auth::Verdict::Http400_BadRequest, "no site on this address serves host '" + std::string(authority) + "'",
                         accept);
      return h;
    }
    ConnectionInfo routed{c.snap, c.listener, c.snap.sites[route->site], c.tls, c.client_is_local,
                          c.revocation, c.clock, c.request_id, c.cookie, c.generation};
    start(routed, req, r, h);
    h.site = route->site;
    return h;
  }
  if (!key->empty() && route && route->site != c.site.index) {
    // An https connection belongs to the site its TLS handshake (SNI) chose. A Host naming
    // another site on this endpoint would borrow that site's policy over this connection's
    // certificate decision: the known mTLS bypass. Refuse it (RFC 9110 §15.5.20).
    h.response = error(c, auth::Verdict::Http421_MisdirectedRequest,
                       "Host '" + std::string(authority) + "' is served by site \"" +
                           c.snap.sites[route->site].cfg.name + "\", but this TLS connection "
                           "was made for site \"" + c.site.cfg.name + "\"; open a new "
                           "connection with the matching server name",
                       accept);
    return h;
  }
  start(c, req, r, h);
  h.site = c.site.index;
  return h;
}

Handled step_up_or_refuse(const ConnectionInfo& c, const Request& req, Routed& r, const std::string& why) {
  Handled h;
  h.site = c.site.index;
  if (!c.site.step_up_key) {
    r.state->certificate_unavailable("this client cannot be asked for a certificate after the handshake: " + why +
                                     " (the site has no [sites.step_up] to send it to)");
    return resume(c, req, r);
  }
  std::string cookie;
  if ((r.late_facts = certificate_from_cookie(c, req, cookie))) {
    r.state->use_certificate(r.late_facts.get());
    return resume(c, req, r);
  }
  h.response = step_up_redirect(c, req, h.outcome);
  done(h, r);
  return h;
}

Handled resume(const ConnectionInfo& c, const Request& req, Routed& r) {
  Handled h;
  h.site = c.site.index;
  if ((h.need = r.state->advance()) != pipeline::Need::None) return h;
  answer(c, req, r, h);
  return h;
}

namespace {
void start(const ConnectionInfo& c, const Request& req, Routed& r, Handled& h) {
  const NormalizedTarget& target = r.target;
  const std::string_view accept = req.header("Accept");
  // A proxied path goes to the backend exactly as the policy below sees it, or not at all.
  r.backend = &c.site.backend_for(target.path);
  if (!r.backend->empty() && !(r.forward = forward_target(target))) {
    h.response = protocol_error(c, auth::Verdict::Http400_BadRequest, "the request path has a segment that backends resolve to "
                                        "another path (a path parameter on '.' or '..', a trailing "
                                        "dot or space, or a second level of percent-encoding)", accept);
    return done(h, r);
  }
  // The token login's own endpoints: before request filtering (".certgate" is a dot segment).
  if (c.site.cfg.token_login.enabled && target.path.starts_with("/.certgate/token/")) {
    const std::string_view rest = std::string_view(target.path).substr(17);
    const bool challenge = rest == "challenge", response = rest == "response";
    if (!challenge && !response) {
      h.response = error(c, auth::Verdict::Http404_NotFound, "the token login has /.certgate/token/challenge and "
                                                             "/.certgate/token/response only", accept);
    } else if (challenge && req.method != "GET") {
      h.response = error(c, auth::Verdict::Http405_MethodNotAllowed, "the challenge is fetched with GET", accept);
      h.response.set("Allow", "GET");
    } else if (response && req.method != "POST") {
      h.response = error(c, auth::Verdict::Http405_MethodNotAllowed, "the signed response is sent with POST", accept);
      h.response.set("Allow", "POST");
    } else {
      h.token = challenge ? TokenEndpoint::Challenge : TokenEndpoint::Response;
      h.outcome.auth_method = "Anonymous";
    }
    return done(h, r);
  }
  // The assertion's public keys are public: a backend fetches them without a certificate.
  if (c.site.signer && target.path == c.site.cfg.forward.assertion.jwks_path) {
    h.response.set("Content-Type", "application/jwk-set+json");
    h.response.set("Cache-Control", "max-age=300");
    h.response.body = c.site.signer->jwks();
    h.response.head_only = req.method == "HEAD";
    h.outcome.auth_method = "Anonymous";
    return done(h, r);
  }
  // The reserved step-up addresses (docs/on-demand.md), before request filtering hides them.
  if (c.tls && is_step_up_path(target.path)) {
    auto begin = std::make_unique<StepUpBegin>();
    if (target.path.size() > kStepUpPath.size())
      h.response = step_up_endpoint(c, req, target.path, target.query, h.outcome, h.single_use);
    else if (begin_step_up(c, req, target.query, *begin, h.response, h.outcome)) {
      // Decided for the protected site at the return path, as if the certificate were presented
      // there, and with it required whatever that location's flags say.
      begin->policy = begin->site->policy_for(begin->return_path.substr(0, begin->return_path.find('?')));
      begin->policy.ssl_flags.bits |= auth::kSslRequireCert;
      std::vector<pki::X509Ptr> certs;
      X509_up_ref(c.tls->leaf.get());
      certs.emplace_back(c.tls->leaf.get());
      for (int i = 0; STACK_OF(X509)* chain = c.tls->presented_chain(); ++i) {
        if (i >= sk_X509_num(chain)) break;
        X509_up_ref(sk_X509_value(chain, i));
        certs.emplace_back(sk_X509_value(chain, i));
      }
      r.late_facts = std::make_unique<tls::TlsFacts>(tls::TlsFacts::from_certificates(certs, true));
      r.step_up = std::move(begin);
      pipeline::Inputs in;
      in.site = r.step_up->site;
      in.policy = &r.step_up->policy;
      in.tls = r.late_facts.get();
      in.store = c.revocation;
      in.clock = c.clock;
      in.authorization = req.header("Authorization");
      r.state.emplace(in);
      if ((h.need = r.state->advance()) != pipeline::Need::None) return;
      return answer(c, req, r, h);
    }
    return done(h, r);
  }
  // IIS request filtering runs before authentication, for files and the backend alike: hidden
  // content is refused the same way to everyone.
  if (auto seg = hidden_segment(target.path, c.site.hidden_for(target.path)); !seg.empty()) {
    h.response = error(c, auth::Verdict::Http404_8_HiddenSegment,
                       "the path contains the hidden segment '" + std::string(seg) +
                           "' (request filtering: hidden_segments / allow_dot_segments)",
                       accept, &req, target.path);
    return done(h, r);
  }
  pipeline::Inputs in;
  in.site = &c.site;
  in.policy = &c.site.policy_for(target.path);
  in.tls = c.tls;
  // A certificate from the TLS handshake always wins over a cookie.
  if (in.policy->token_login && c.cookie && c.site.cfg.token_login.enabled && (!c.tls || !c.tls->leaf))
    if (tls::TlsFacts* facts = c.cookie->facts(c.site, c.generation, req.header("Cookie"), c.clock->unix_seconds(), c.tls))
      in.tls = facts;
  in.store = c.revocation;
  in.clock = c.clock;
  in.authorization = req.header("Authorization");
  r.state.emplace(in);
  if ((h.need = r.state->advance()) != pipeline::Need::None) return;
  return answer(c, req, r, h);
}

void answer(const ConnectionInfo& c, const Request& req, Routed& r, Handled& h) {
  const NormalizedTarget& target = r.target;
  const std::string_view accept = req.header("Accept");
  const auth::LocationPolicy& policy = *r.state->inputs().policy;
  h.outcome = r.state->take_outcome();
  if (r.step_up) {
    h.response = finish_step_up(c, req, *r.step_up, h.outcome, r.late_facts->leaf.get(), r.late_facts->presented_chain(),
                                h.single_use);
    return done(h, r);
  }
  if (!h.outcome.allowed()) {
    h.response = page(c, from_outcome(h.outcome), accept, &req, target.path, &h.outcome);
    if (h.outcome.challenge)
      h.response.set("WWW-Authenticate", "Basic realm=\"" + c.site.auth.realm + "\", charset=\"UTF-8\"");
    return done(h, r);
  }
  // An authenticated answer is this user's: no shared cache keeps it, and the browser asks
  // again before showing it (a cheap 304), so a revoked certificate stops seeing it.
  if (!h.outcome.user.empty() || h.outcome.certificate) h.cache_control = c.site.cache_control_for(target.path);
  if (!r.backend->empty()) {
    ProxyPlan plan;
    plan.backend = &c.site.backends.at(*r.backend);
    plan.backend_key = *r.backend;
    plan.target = std::move(*r.forward);
    plan.host = r.authority;
    plan.websocket = iequals(req.header("Upgrade"), "websocket");
    if (plan.websocket) plan.websocket_accept = websocket_accept(req.header("Sec-WebSocket-Key"));
    plan.strip_authorization = c.site.auth.basic_enabled || policy.require_password;
    plan.cache_control = h.cache_control;
    plan.own_cookies = {c.site.cfg.token_login.cookie_name, c.site.cfg.step_up.cookie_name};
    if (h.outcome.certificate) {
      tls::TlsFacts* cert = r.state->inputs().tls;  // the handshake's, or the token cookie's
      plan.leaf = cert->leaf.get();
      plan.chain = cert->presented_chain();
    }
    h.proxy = std::move(plan);
    return done(h, r);
  }
  if (req.method != "GET" && req.method != "HEAD") {
    h.response = error(c, auth::Verdict::Http405_MethodNotAllowed, "this site serves static files: only GET and HEAD", accept,
                       &req, target.path);
    h.response.set("Allow", "GET, HEAD");
    return done(h, r);
  }
  StaticRequest job;
  job.root = &c.site.cfg.root;
  job.default_documents = &c.site.cfg.default_documents;
  job.path = target.path;
  job.query = target.query;
  job.trailing_slash = target.trailing_slash;
  job.head = req.method == "HEAD";
  job.if_none_match = req.header("If-None-Match");
  job.if_modified_since = req.header("If-Modified-Since");
  job.range = req.header("Range");
  job.if_range = req.header("If-Range");
  h.static_job = std::move(job);
  return done(h, r);
}

}  // namespace

Response refusal(const ConnectionInfo& c, const auth::Outcome& outcome, std::string_view accept) {
  return page(c, from_outcome(outcome), accept, nullptr, {}, &outcome);
}

Response answer_error(const ConnectionInfo& c, auth::Verdict answer, std::string reason, std::string_view accept) {
  return error(c, answer, std::move(reason), accept);
}

Response gateway_error(const ConnectionInfo& c, auth::Verdict answer, std::string reason,
                       std::string_view accept) {
  return error(c, answer, std::move(reason), accept);
}

Response finish_static(const ConnectionInfo& c, Response r, std::string_view accept) {
  if (r.status < 400 || !r.body.empty()) return r;
  const auto is = [&r](auth::Verdict v) {
    const auto& row = auth::info(v);
    return r.status == row.status && r.substatus == row.substatus;
  };
  auth::Verdict answer;
  std::string reason;
  if (is(auth::Verdict::Http404_NotFound)) {
    answer = auth::Verdict::Http404_NotFound;
    reason = "no file or default document at this path";
  } else if (is(auth::Verdict::Http403_14_ListingDenied)) {
    answer = auth::Verdict::Http403_14_ListingDenied;
    reason = "the folder has no default document and directory browsing is off";
  } else if (is(auth::Verdict::Http416_RangeNotSatisfiable)) {
    answer = auth::Verdict::Http416_RangeNotSatisfiable;
    reason = "the requested byte range lies beyond the end of the file";
  } else if (is(auth::Verdict::Http500_FileUnreadable)) {
    answer = auth::Verdict::Http500_FileUnreadable;
    reason = "the file could not be read";
  } else {
    return r;
  }
  Response out = error(c, answer, std::move(reason), accept);
  for (auto& hd : r.headers) out.set(hd.name, hd.value);
  out.set("Content-Type", std::string(content_type(page_format(accept))));
  return out;
}

}  // namespace certgate::http
