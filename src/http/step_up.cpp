#include "http/step_up.hpp"

#include "http/error_page.hpp"
#include "session/cert_cache.hpp"

#include <openssl/asn1.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <unordered_set>

namespace certgate::http {
namespace {

constexpr std::int64_t kTicketSeconds = 60;

Response refuse(const ConnectionInfo& c, const Request& req, auth::Verdict v, std::string reason, auth::Outcome& outcome) {
  outcome = auth::Outcome{.verdict = v, .reason = std::move(reason)};
  return answer_error(c, v, outcome.reason, req.header("Accept"));
}

// 403.7: the certificate cannot be had this way (decided by the core, auth/decide.hpp).
Response unobtainable(const ConnectionInfo& c, const Request& req, std::string reason, auth::Outcome& outcome) {
  outcome = auth::certificate_unobtainable(std::move(reason));
  return refusal(c, outcome, req.header("Accept"));
}

// RFC 3986 characters that may stand in a URL as they are; nothing that could end a header
// line, a quoted string or an HTML attribute.
bool url_safe(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char ch) {
    return ch > 0x20 && ch < 0x7f && ch != '"' && ch != '<' && ch != '>' && ch != '\\' && ch != '^' &&
           ch != '`' && ch != '{' && ch != '|' && ch != '}' && ch != '#';
  });
}

// An origin-form path that cannot leave the origin ("//host", "/\host" would).
bool local_path(std::string_view p) {
  return !p.empty() && p[0] == '/' && (p.size() == 1 || (p[1] != '/' && p[1] != '\\')) && url_safe(p);
}

std::string pct_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') out += static_cast<char>(ch);
    else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

std::optional<std::string> pct_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2])))
        return std::nullopt;
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

// One query parameter, decoded; nullopt when absent, repeated or badly encoded.
std::optional<std::string> param(std::string_view query, std::string_view name) {
  std::optional<std::string> found;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    if (found) return std::nullopt;  // two values: which one would a checker see?
    found = pct_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!found) return std::nullopt;
  }
  return found;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return out;
}

// "host[:port]" → host, port (443 when absent).
bool split_authority(std::string_view a, std::string& host, std::uint16_t& port) {
  auto colon = a.rfind(':');
  port = 443;
  if (colon != std::string_view::npos && a.find(']') == std::string_view::npos) {
    const std::string_view digits = a.substr(colon + 1);
    if (digits.empty() || digits.size() > 5 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return false;
    const int p = std::stoi(std::string(digits));
    if (p <= 0 || p > 65535) return false;
    port = static_cast<std::uint16_t>(p);
    a = a.substr(0, colon);
  }
  auto key = host_key(a);
  if (!key || key->empty()) return false;
  host = *key;
  return true;
}

// A name and port the site is configured for over https: a binding's host name, or, for a
// binding without one, the step-up URL's host (the same host on another port). Not whatever a
// client wrote in its SNI or Host: a default binding answers any name, and a return URL on an
// attacker's name would carry the ticket to the attacker.
bool serves(const runtime::SiteRuntime& s, std::string_view authority) {
  std::string host, step_host;
  std::uint16_t port = 0, step_port = 0;
  if (!split_authority(authority, host, port)) return false;
  const bool step_known = split_authority(s.cfg.step_up.authority, step_host, step_port);
  return std::any_of(s.cfg.bindings.begin(), s.cfg.bindings.end(), [&](const config::Binding& b) {
    return b.https && b.port == port && (b.host.empty() ? step_known && host == step_host : b.host == host);
  });
}

// The browser binding of a step-up (OAuth's "state"): the protected site sets a random value in
// a cookie, signs it with the return URL, and the ticket carries it. /complete sets the
// certificate cookie only in the browser that holds it, so a completion link made by one user
// (ticket and all) cannot log another browser in as them. "__Host-": a sibling subdomain cannot
// set it for this host (cookie tossing would bring the binding back).
std::string state_cookie_name(const config::StepUp& su) {
  std::string_view name = su.cookie_name;
  if (name.starts_with("__Host-")) name.remove_prefix(7);
  return "__Host-" + std::string(name) + "_state";
}

std::string state_cookie(const config::StepUp& su, std::string_view value, int max_age) {
  return state_cookie_name(su) + "=" + std::string(value) + "; Path=/; Max-Age=" + std::to_string(max_age) +
         "; HttpOnly; Secure; SameSite=Lax";
}

std::string signed_text(std::string_view ret, std::string_view state) {
  return std::string(ret) + "\n" + std::string(state);
}

std::int64_t not_after(X509* leaf) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

}  // namespace

bool is_step_up_path(std::string_view path) {
  return path.substr(0, kStepUpPath.size()) == kStepUpPath &&
         (path.size() == kStepUpPath.size() || path[kStepUpPath.size()] == '/');
}

std::unique_ptr<tls::TlsFacts> certificate_from_cookie(const ConnectionInfo& c, const Request& req, std::string& why) {
  const auto& su = c.site.cfg.step_up;
  std::string_view value;
  for (const auto& h : req.headers)
    if (iequals(h.name, "Cookie") && (value = session::cookie_value(h.value, su.cookie_name)).size() > 0) break;
  if (value.empty()) {
    why = "no step-up cookie";
    return nullptr;
  }
  session::Claims claims;
  const auto check = session::open(*c.site.step_up_key, session::Kind::Cookie, value, c.site.cfg.name,
                                   c.clock->unix_seconds(), c.snap.cfg.digest, claims);
  if (check != session::Check::Ok) {
    why = std::string("the step-up cookie is ") + session::describe(check);
    return nullptr;
  }
  auto certs = session::CertCache::process().find(claims.cert_sha256);
  if (!certs) {
    why = "the certificate of the step-up cookie is no longer cached";
    return nullptr;
  }
  auto facts = std::make_unique<tls::TlsFacts>(tls::TlsFacts::from_certificates(*certs, true));
  facts->protocol = c.tls->protocol;
  facts->cipher = c.tls->cipher;
  facts->cipher_bits = c.tls->cipher_bits;
  facts->sni = c.tls->sni;
  return facts;
}

Response step_up_redirect(const ConnectionInfo& c, const Request& req, auth::Outcome& outcome) {
  const auto& su = c.site.cfg.step_up;
  std::string_view authority = req.header("Host");
  if (auto form = split_target(req.target); form && form->absolute) authority = form->authority;
  auto form = split_target(req.target);
  const std::string ret = "https://" + lower(authority) + std::string(form ? form->origin : "/");
  // Only what this server would have built goes out in a header (no CR/LF, quotes, ...), and only
  // for a name this site is configured for.
  if (!url_safe(ret) || !serves(c.site, lower(authority)))
    return unobtainable(c, req, "this client cannot be asked for a certificate after the handshake, and the host '" +
                      std::string(authority.substr(0, 255)) + "' is not a name this site's bindings (or its step-up URL) "
                      "are configured for, so no step-up can return to it",
                  outcome);
  const std::string state = session::random_text(16);
  const std::string location = su.url + std::string(kStepUpPath.substr(1)) + "?return=" + pct_encode(ret) +
                               "&state=" + state + "&sig=" + session::sign_text(*c.site.step_up_key, signed_text(ret, state));
  const bool get = req.method == "GET" || req.method == "HEAD";
  const auth::Verdict v = get ? auth::Verdict::Http303_StepUp : auth::Verdict::Http401_StepUp;
  outcome = auth::Outcome{.verdict = v,
                          .reason = "this location needs a client certificate; present it at " + su.url};
  Response r;
  if (get) {
    r.status = 303;
    r.body = "See Other: " + location + "\n";
    r.set("Content-Type", "text/plain; charset=utf-8");
  } else {
    r = answer_error(c, v, outcome.reason, req.header("Accept"));
  }
  r.set("Location", location);
  r.set("Cache-Control", "no-store");
  r.headers.push_back({"Set-Cookie", state_cookie(su, state, 600)});
  return r;
}

bool begin_step_up(const ConnectionInfo& c, const Request& req, std::string_view query, StepUpBegin& out,
                   Response& refusal, auth::Outcome& outcome) {
  auto ret = param(query, "return");
  auto sig = param(query, "sig");
  auto state = param(query, "state");
  if (!ret || !sig || !state || state->empty() || !url_safe(*ret) || !url_safe(*state) ||
      ret->substr(0, 8) != "https://") {
    refusal = refuse(c, req, auth::Verdict::Http400_BadRequest,
                     "the step-up request needs one return URL (https), its state and its signature", outcome);
    return false;
  }
  const std::string rest = ret->substr(8);
  const auto slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  const std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  const std::string here = lower(req.header("Host"));
  for (const auto& s : c.snap.sites) {
    // The protected site names this address as its step-up URL, serves the return URL's host,
    // and signed that URL itself: no other URL is ever redirected to (no open redirect).
    if (!s.step_up_key || s.cfg.step_up.authority != here || !serves(s, authority) || !local_path(path) ||
        !session::verify_text(*s.step_up_key, signed_text(*ret, *state), *sig))
      continue;
    out.site = &s;
    out.return_url = "https://" + authority + path;
    out.return_path = path;
    out.state = *state;
    if (!c.tls || !c.tls->leaf) {
      refusal = unobtainable(c, req, "no client certificate was presented to the step-up address (its binding must ask at "
                       "the handshake: client_certificate = \"handshake\" on a site that negotiates certificates)",
                       outcome);
      return false;
    }
    return true;
  }
  refusal = refuse(c, req, auth::Verdict::Http400_BadRequest,
                   "the return URL was not issued by a site whose step-up address is this one", outcome);
  return false;
}

Response finish_step_up(const ConnectionInfo& c, const Request& req, const StepUpBegin& b, auth::Outcome& outcome,
                        X509* leaf, STACK_OF(X509) * chain, std::optional<Handled::SingleUse>& single_use) {
  if (!outcome.allowed() || !outcome.certificate)
    return refusal(c, outcome, req.header("Accept"));
  const std::int64_t now = c.clock->unix_seconds();
  session::Claims t;
  t.site = b.site->cfg.name;
  t.user = outcome.user;
  t.cert_sha256 = session::CertCache::process().put(leaf, chain);
  t.expires = now + kTicketSeconds;
  t.nonce = session::random_bytes(16);
  t.generation = b.state;  // a ticket has no configuration generation: its slot holds the browser binding
  const std::string ticket = session::seal(*b.site->step_up_key, session::Kind::Ticket, t);
  // Issued in the single-use store (shared by instances with the redis backend) before the
  // redirect goes out; /complete takes it once.
  single_use = Handled::SingleUse{true, session::sign_text(*b.site->step_up_key, t.nonce)};
  const auto slash = b.return_url.find('/', 8);
  const std::string origin = b.return_url.substr(0, slash);
  Response r;
  r.status = 303;
  r.set("Location", origin + std::string(kStepUpPath) + "/complete?ticket=" + ticket + "&return=" +
                        pct_encode(b.return_path));
  r.set("Cache-Control", "no-store");
  return r;
}

Response step_up_endpoint(const ConnectionInfo& c, const Request& req, std::string_view path, std::string_view query,
                          auth::Outcome& outcome, std::optional<Handled::SingleUse>& single_use) {
  const auto& su = c.site.cfg.step_up;
  const std::string_view sub = path.substr(kStepUpPath.size());
  if (!c.site.step_up_key || (sub != "/complete" && sub != "/logout"))
    return refuse(c, req, auth::Verdict::Http404_NotFound, "no such step-up address on this site", outcome);
  if (req.method != "GET" && req.method != "HEAD") {
    Response r = refuse(c, req, auth::Verdict::Http405_MethodNotAllowed, "only GET and HEAD", outcome);
    r.set("Allow", "GET, HEAD");
    return r;
  }
  outcome.auth_method = "Anonymous";
  Response r;
  r.status = 303;
  r.set("Cache-Control", "no-store");
  if (sub == "/logout") {
    // A link or an <img> on another site must not log the user out (logout CSRF): browsers say
    // where a request comes from in Sec-Fetch-Site; a client that sends none is not a browser.
    const std::string_view from = req.header("Sec-Fetch-Site");
    if (!from.empty() && !iequals(from, "same-origin") && !iequals(from, "same-site") && !iequals(from, "none"))
      return refuse(c, req, auth::Verdict::Http400_BadRequest,
                    "the step-up logout was requested from another site (Sec-Fetch-Site: " +
                        std::string(from.substr(0, 32)) + ")",
                    outcome);
    r.set("Set-Cookie", session::clear_cookie(su.cookie_name, session::SameSite::Lax));
    r.set("Location", "/");
    return r;
  }
  auto ticket = param(query, "ticket");
  auto ret = param(query, "return");
  if (!ticket || !ret || !local_path(*ret))
    return refuse(c, req, auth::Verdict::Http400_BadRequest, "the step-up completion needs a ticket and a local return path",
                  outcome);
  const std::int64_t now = c.clock->unix_seconds();
  session::Claims claims;
  std::string_view state;
  for (const auto& h : req.headers)
    if (iequals(h.name, "Cookie") && !(state = session::cookie_value(h.value, state_cookie_name(su))).empty()) break;
  const auto check = session::open(*c.site.step_up_key, session::Kind::Ticket, *ticket, c.site.cfg.name, now, state, claims);
  if (check == session::Check::OtherGeneration || (check == session::Check::Ok && state.empty()))
    return unobtainable(c, req, "the step-up ticket was issued to the browser that started that step-up, and this "
                        "request does not carry its state cookie (" + state_cookie_name(su) + ")", outcome);
  if (check != session::Check::Ok || claims.expires > now + kTicketSeconds)
    return unobtainable(c, req, std::string("the step-up ticket is ") + session::describe(check), outcome);
  single_use = Handled::SingleUse{false, session::sign_text(*c.site.step_up_key, claims.nonce)};
  auto certs = session::CertCache::process().find(claims.cert_sha256);
  if (!certs)
    return unobtainable(c, req, "the step-up ticket's certificate is no longer cached", outcome);
  session::Claims cookie = claims;
  cookie.nonce.clear();
  cookie.generation = c.snap.cfg.digest;
  cookie.expires = std::min<std::int64_t>(now + su.lifetime_seconds, not_after(certs->front().get()));
  r.set("Set-Cookie", session::set_cookie(su.cookie_name, session::seal(*c.site.step_up_key, session::Kind::Cookie, cookie),
                                          cookie.expires - now, session::SameSite::Lax));
  r.headers.push_back({"Set-Cookie", state_cookie(su, "", 0)});
  r.set("Location", *ret);
  outcome.user = claims.user;
  outcome.auth_method = "Certificate";
  return r;
}

void step_up_after_store(const ConnectionInfo& c, const Request& req, Handled& h, state::Status status,
                         const std::string& error) {
  h.single_use.reset();
  if (status == state::Status::Done) return;
  const bool unavailable = status == state::Status::Unavailable;
  h.response = unavailable
                   ? refuse(c, req, auth::Verdict::Http503_StateUnavailable,
                            "the single-use store cannot answer for the step-up ticket: " + error, h.outcome)
                   : unobtainable(c, req, "the step-up ticket was already used, or was not issued here", h.outcome);
  if (unavailable) h.response.set("Retry-After", "1");
}

}  // namespace certgate::http
