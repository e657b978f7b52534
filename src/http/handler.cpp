#include "http/handler.hpp"

#include "auth/decide.hpp"
#include "auth/directory.hpp"
#include "http/basic_auth.hpp"
#include "http/error_page.hpp"
#include "http/path.hpp"
#include "http/request_filter.hpp"

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

std::string_view title_for(int status, int substatus) {
  if (status == 403 && substatus == 14) return "Directory listing denied";
  if (status == 404 && substatus == 8)
    return "The request filtering module is configured to deny a path in the URL that contains "
           "a hidden segment";
  if (status == 404) return "The resource you are looking for has been removed, had its name "
                            "changed, or is temporarily unavailable";
  if (status == 421) return "This connection was made for another site";
  return reason_phrase(status);
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

Response error(const ConnectionInfo& c, int status, int substatus, std::string reason,
               std::string_view accept) {
  return error_response({status, substatus, 0, std::string(title_for(status, substatus)),
                         std::move(reason)},
                        detailed_for(c), prefers_json(accept));
}

// Moved out of the target (no copy on the request path).
std::string logged_path(NormalizedTarget&& t) {
  if (t.trailing_slash) t.path += '/';
  return std::move(t.path);
}

}  // namespace

Response protocol_error(const ConnectionInfo& c, int status, std::string reason,
                        std::string_view accept) {
  Response r = error(c, status, 0, std::move(reason), accept);
  r.close = true;
  return r;
}

namespace {
Handled handle_routed(const ConnectionInfo& c, const Request& req, const NormalizedTarget& target,
                      std::string_view authority, std::optional<bool> password_ok);
}  // namespace

Handled handle(const ConnectionInfo& c, const Request& req, std::optional<bool> password_ok) {
  Handled h;
  h.site = c.site.index;
  const std::string_view accept = req.header("Accept");
  auto form = split_target(req.target);
  auto target = form ? normalize_target(form->origin) : std::nullopt;
  if (!target) {
    h.response = protocol_error(c, 400, "the request target is not a valid path", accept);
    return h;
  }
  // RFC 9112 §3.2: one Host, and a valid one; an absolute-form target's authority replaces it.
  std::size_t hosts = 0;
  std::string_view host_header;
  for (const auto& hd : req.headers)
    if (iequals(hd.name, "Host") && hosts++ == 0) host_header = hd.value;
  if (hosts > 1) {
    h.response = protocol_error(c, 400, "the request has more than one Host header", accept);
    return h;
  }
  if (req.version >= 11 && hosts == 0) {
    h.response = protocol_error(c, 400, "HTTP/1.1 requests must carry a Host header", accept);
    return h;
  }
  const std::string_view authority = form->absolute ? form->authority : host_header;
  const auto key = host_key(authority);
  if (!key) {
    h.response = protocol_error(c, 400, "the request's host '" + std::string(authority) +
                                            "' is not a valid host name", accept);
    return h;
  }
  const auto* route = key->empty() ? c.listener.default_route() : c.listener.route_for_host(*key);
  if (!c.tls) {
    // Plain HTTP has no handshake to choose the site: the Host does, for every request.
    if (!route) {
      h.response = error(c, 400, 0, "no site on this address serves host '" + std::string(authority) + "'",
                         accept);
      return h;
    }
    ConnectionInfo routed{c.snap, c.listener, c.snap.sites[route->site], c.tls, c.client_is_local,
                          c.revocation};
    Handled r = handle_routed(routed, req, *target, authority, password_ok);
    r.site = route->site;
    r.path = logged_path(std::move(*target));
    return r;
  }
  if (!key->empty() && route && route->site != c.site.index) {
    // An https connection belongs to the site its TLS handshake (SNI) chose. A Host naming
    // another site on this endpoint would borrow that site's policy over this connection's
    // certificate decision: the known mTLS bypass. Refuse it (RFC 9110 §15.5.20).
    h.response = error(c, 421, 0,
                       "Host '" + std::string(authority) + "' is served by site \"" +
                           c.snap.sites[route->site].cfg.name + "\", but this TLS connection "
                           "was made for site \"" + c.site.cfg.name + "\"; open a new "
                           "connection with the matching server name",
                       accept);
    return h;
  }
  Handled r = handle_routed(c, req, *target, authority, password_ok);
  r.site = c.site.index;
  r.path = logged_path(std::move(*target));
  return r;
}

namespace {
Handled handle_routed(const ConnectionInfo& c, const Request& req, const NormalizedTarget& target,
                      std::string_view authority, std::optional<bool> password_ok) {
  Handled h;
  const std::string_view accept = req.header("Accept");
  // A proxied path goes to the backend exactly as the policy below sees it, or not at all.
  const std::string& backend = c.site.backend_for(target.path);
  std::optional<std::string> forward;
  if (!backend.empty() && !(forward = forward_target(target))) {
    h.response = protocol_error(c, 400, "the request path has a segment that backends resolve to "
                                        "another path (a path parameter on '.' or '..', a trailing "
                                        "dot or space, or a second level of percent-encoding)", accept);
    return h;
  }
  // The assertion's public keys are public: a backend fetches them without a certificate.
  if (c.site.signer && target.path == c.site.cfg.forward.assertion.jwks_path) {
    h.response.set("Content-Type", "application/jwk-set+json");
    h.response.set("Cache-Control", "max-age=300");
    h.response.body = c.site.signer->jwks();
    h.response.head_only = req.method == "HEAD";
    h.outcome.auth_method = "Anonymous";
    return h;
  }
  // IIS request filtering runs before authentication, for files and the backend alike: hidden
  // content is refused the same way to everyone.
  if (auto seg = hidden_segment(target.path, c.site.hidden_for(target.path)); !seg.empty()) {
    h.response = error(c, 404, 8,
                       "the path contains the hidden segment '" + std::string(seg) +
                           "' (request filtering: hidden_segments / allow_dot_segments)",
                       accept);
    return h;
  }

  const auth::LocationPolicy& policy = c.site.policy_for(target.path);
  auth::RequestEvidence ev;
  ev.over_tls = c.tls != nullptr;
  if (c.tls) {
    ev.cipher_bits = c.tls->cipher_bits;
    ev.cert_requested = c.tls->cert_requested;
    ev.cert_presented = c.tls->leaf != nullptr;
    if (ev.cert_presented && policy.ssl_flags.negotiates()) {
      std::vector<revocation::Need> needs;
      ev.chain = c.tls->report_for(c.site, c.revocation, needs);
      if (!ev.chain) {
        h.revocation_job = std::move(needs);
        return h;
      }
      if (ev.chain->fault == auth::ChainFault::None && c.site.auth.mapping_enabled) {
        ev.mapped = &c.tls->mapping_for(c.site);
        if (auth::defers_to_directory(c.site.auth, *ev.mapped)) {
          ev.cert = &c.tls->leaf_facts();
          const bool once = std::exchange(c.tls->directory_once, false);
          if (!c.tls->directory_mapped ||
              (!once && c.tls->directory_until_ms <= directory::steady_ms())) {
            auto hit = c.site.directory->cached(*ev.cert);
            if (!hit) {
              h.directory_job = true;
              return h;
            }
            c.tls->directory_mapped = std::move(hit->outcome);
            c.tls->directory_until_ms = hit->expires_ms;
          }
          ev.mapped = c.tls->directory_mapped.get();
        }
      } else if (ev.chain->fault == auth::ChainFault::None) {
        // No mapping: the request runs as anonymous or Basic, and the core vouches for the
        // certificate this location validated (forwarded for the backend to map) given its facts.
        ev.cert = &c.tls->leaf_facts();
      }
    }
  }
  // Basic credentials matter only where Basic or two-factor can use them.
  const std::string_view authorization = req.header("Authorization");
  if ((c.site.auth.basic_enabled || policy.require_password) && is_basic(authorization)) {
    auto creds = parse_basic(authorization);
    ev.basic = auth::PasswordCheck::Invalid;
    if (creds) {
      ev.basic_user = creds->user;
      auto it = c.site.basic_users.find(auth::fold(creds->user));
      if (it != c.site.basic_users.end()) {
        std::string key = password_cache_key(creds->user, creds->password, it->second);
        std::optional<bool> ok = password_ok ? password_ok : cached_password_result(key);
        if (!ok) {
          h.password_job = PasswordJob{it->second, std::move(creds->password), std::move(key)};
          return h;
        }
        ev.basic = *ok ? auth::PasswordCheck::Valid : auth::PasswordCheck::Invalid;
      }
    }
  }
  h.outcome = auth::decide(policy, ev);
  if (!h.outcome.allowed()) {
    h.response = error_response(from_outcome(h.outcome), detailed_for(c), prefers_json(accept));
    if (h.outcome.challenge)
      h.response.set("WWW-Authenticate", "Basic realm=\"" + c.site.auth.realm + "\", charset=\"UTF-8\"");
    return h;
  }
  if (!backend.empty()) {
    ProxyPlan plan;
    plan.backend = &c.site.backends.at(backend);
    plan.backend_key = backend;
    plan.target = std::move(*forward);
    plan.host = authority;
    plan.websocket = iequals(req.header("Upgrade"), "websocket");
    if (plan.websocket) plan.websocket_accept = websocket_accept(req.header("Sec-WebSocket-Key"));
    plan.strip_authorization = c.site.auth.basic_enabled || policy.require_password;
    if (h.outcome.certificate) {
      plan.leaf = c.tls->leaf.get();
      plan.chain = c.tls->presented_chain();
    }
    h.proxy = std::move(plan);
    return h;
  }
  if (req.method != "GET" && req.method != "HEAD") {
    h.response = error(c, 405, 0, "this site serves static files: only GET and HEAD", accept);
    h.response.set("Allow", "GET, HEAD");
    return h;
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
  return h;
}

}  // namespace

Response gateway_error(const ConnectionInfo& c, int status, int substatus, std::uint32_t win32,
                       std::string reason, std::string_view accept) {
  Response r = error_response({status, substatus, win32,
                               status == 504 ? "The backend did not answer in time"
                                             : "The backend could not be reached",
                               std::move(reason)},
                              detailed_for(c), prefers_json(accept));
  return r;
}

Response finish_static(const ConnectionInfo& c, Response r, std::string_view accept) {
  if (r.status < 400 || !r.body.empty()) return r;
  std::string reason;
  if (r.status == 404) reason = "no file or default document at this path";
  if (r.status == 403 && r.substatus == 14)
    reason = "the folder has no default document and directory browsing is off";
  if (r.status == 416) reason = "the requested byte range lies beyond the end of the file";
  Response page = error(c, r.status, r.substatus, std::move(reason), accept);
  for (auto& hd : r.headers) page.set(hd.name, hd.value);
  page.set("Content-Type", prefers_json(accept) ? "application/json" : "text/html; charset=utf-8");
  return page;
}

}  // namespace certgate::http
