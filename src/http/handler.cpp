#include "http/handler.hpp"

#include "auth/decide.hpp"
#include "auth/directory.hpp"
#include "http/basic_auth.hpp"
#include "http/error_page.hpp"
#include "http/path.hpp"

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
  if (status == 404) return "The resource you are looking for has been removed, had its name "
                            "changed, or is temporarily unavailable";
  if (status == 421) return "This connection was made for another site";
  return reason_phrase(status);
}

Response error(const ConnectionInfo& c, int status, int substatus, std::string reason,
               std::string_view accept) {
  return error_response({status, substatus, 0, std::string(title_for(status, substatus)),
                         std::move(reason)},
                        detailed_for(c), prefers_json(accept));
}

}  // namespace

Response protocol_error(const ConnectionInfo& c, int status, std::string reason,
                        std::string_view accept) {
  Response r = error(c, status, 0, std::move(reason), accept);
  r.close = true;
  return r;
}

Handled handle(const ConnectionInfo& c, const Request& req, std::optional<bool> password_ok) {
  Handled h;
  const std::string_view accept = req.header("Accept");
  auto target = normalize_target(req.target);
  if (!target) {
    h.response = protocol_error(c, 400, "the request target is not a valid path", accept);
    return h;
  }
  const std::string_view host_header = req.header("Host");
  if (req.version >= 11 && !req.has_header("Host")) {
    h.response = protocol_error(c, 400, "HTTP/1.1 requests must carry a Host header", accept);
    return h;
  }
  // An https connection belongs to the site its TLS handshake (SNI) chose. A Host naming
  // another site on this endpoint would borrow that site's policy over this connection's
  // certificate decision: the known mTLS bypass. Refuse it (RFC 9110 §15.5.20).
  if (c.tls && !host_header.empty()) {
    const auto* route = c.listener.route_for_host(host_only(host_header));
    if (route && route->site != c.site.index) {
      h.response = error(c, 421, 0,
                         "Host '" + std::string(host_header) + "' is served by site \"" +
                             c.snap.sites[route->site].cfg.name + "\", but this TLS connection "
                             "was made for site \"" + c.site.cfg.name + "\"; open a new "
                             "connection with the matching server name",
                         accept);
      return h;
    }
  }

  // The assertion's public keys are public: a backend fetches them without a certificate.
  if (c.site.signer && target->path == c.site.cfg.forward.assertion.jwks_path) {
    h.response.set("Content-Type", "application/jwk-set+json");
    h.response.set("Cache-Control", "max-age=300");
    h.response.body = c.site.signer->jwks();
    h.response.head_only = req.method == "HEAD";
    h.outcome.auth_method = "Anonymous";
    return h;
  }

  const auth::LocationPolicy& policy = c.site.policy_for(target->path);
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
  if (const std::string& backend = c.site.backend_for(target->path); !backend.empty()) {
    ProxyPlan plan;
    plan.backend = &c.site.backends.at(backend);
    plan.backend_key = backend;
    plan.websocket = iequals(req.header("Upgrade"), "websocket");
    plan.strip_authorization = c.site.auth.basic_enabled || policy.require_password;
    h.proxy = plan;
    return h;
  }
  if (req.method != "GET" && req.method != "HEAD") {
    h.response = error(c, 405, 0, "this site serves static files: only GET and HEAD", accept);
    h.response.set("Allow", "GET, HEAD");
    return h;
  }
  StaticRequest job;
  job.root = c.site.cfg.root;
  job.default_documents = c.site.cfg.default_documents;
  job.path = target->path;
  job.query = target->query;
  job.trailing_slash = target->trailing_slash;
  job.head = req.method == "HEAD";
  job.if_none_match = req.header("If-None-Match");
  job.if_modified_since = req.header("If-Modified-Since");
  job.range = req.header("Range");
  job.if_range = req.header("If-Range");
  h.static_job = std::move(job);
  return h;
}

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
