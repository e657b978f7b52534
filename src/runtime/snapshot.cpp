#include "runtime/snapshot.hpp"

#include "pki/x509_text.hpp"

#include "pki/cert_facts.hpp"
#include "pki/load.hpp"
#include "tls/server_context.hpp"

#include <algorithm>

namespace certgate::runtime {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::shared_ptr<const pki::TrustStore> build_trust(const config::Site& site) {
  const auto& cc = site.client_certificates;
  if (cc.trusted_cas.empty()) return nullptr;
  std::vector<pki::X509Ptr> anchors, intermediates;
  std::vector<pki::X509CrlPtr> crls;
  auto where = [&](const char* key) {
    return "site \"" + site.name + "\": client_certificates." + key + ": ";
  };
  try {
    for (const auto& f : cc.trusted_cas)
      for (auto& c : pki::load_certificates(f)) anchors.push_back(std::move(c));
  } catch (const pki::LoadError& e) {
    throw CompileError(where("trusted_cas") + e.what());
  }
  try {
    for (const auto& f : cc.intermediates)
      for (auto& c : pki::load_certificates(f)) intermediates.push_back(std::move(c));
  } catch (const pki::LoadError& e) {
    throw CompileError(where("intermediates") + e.what());
  }
  try {
    for (const auto& f : cc.crl_files)
      for (auto& c : pki::load_crls(f)) crls.push_back(std::move(c));
  } catch (const pki::LoadError& e) {
    throw CompileError(where("crl_files") + e.what());
  }
  pki::TrustOptions opts;
  opts.usage_check = cc.usage_check;
  opts.revocation = cc.revocation == config::Revocation::Off         ? pki::RevocationMode::Off
                    : cc.revocation == config::Revocation::CacheOnly ? pki::RevocationMode::CacheOnly
                                                                     : pki::RevocationMode::Online;
  opts.prefer_ocsp = cc.prefer_ocsp;
  opts.freshness_seconds = cc.freshness_seconds;
  opts.url_timeout_ms = cc.url_timeout_ms;
  opts.soft_fail = cc.soft_fail;
  opts.retry_seconds = cc.retry_seconds;
  opts.min_rsa_bits = static_cast<int>(cc.min_rsa_bits);
  opts.allow_sha1 = cc.allow_sha1;
  opts.x509_strict = cc.x509_strict;
  opts.max_chain_depth = static_cast<int>(cc.max_chain_depth);
  return std::make_shared<pki::TrustStore>(std::move(anchors), std::move(intermediates),
                                           std::move(crls), std::move(opts));
}

// A one-to-one `certificate`: a file (relative to the config) or the base64 DER text itself,
// PEM armour and whitespace ignored.
pki::X509Ptr one_to_one_certificate(const std::string& text, const std::filesystem::path& base) {
  std::filesystem::path p(text);
  if (!p.is_absolute()) p = base / p;
  std::error_code ec;
  if (text.size() < 4096 && std::filesystem::is_regular_file(p, ec)) {
    auto certs = pki::load_certificates(p);
    return std::move(certs.front());
  }
  std::string b64;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=') b64 += c;
    else if (c == '-') { b64.clear(); }  // PEM armour line: restart after it
  }
  if (auto certs = pki::parse_certificates("-----BEGIN CERTIFICATE-----\n" + b64 +
                                           "\n-----END CERTIFICATE-----\n");
      !certs.empty())
    return std::move(certs.front());
  throw CompileError("neither a readable certificate file nor base64 certificate text");
}

auth::OneToOneKey key_of(const std::string& match) {
  if (match == "public-key") return auth::OneToOneKey::PublicKey;
  if (match == "issuer-serial") return auth::OneToOneKey::IssuerSerial;
  if (match == "ski") return auth::OneToOneKey::Ski;
  if (match == "upn") return auth::OneToOneKey::Upn;
  if (match == "email") return auth::OneToOneKey::Email;
  return auth::OneToOneKey::Certificate;
}

std::vector<std::pair<std::string, std::string>> read_colon_file(const std::filesystem::path& file,
                                                                 const std::string& what) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string text = pki::read_file(file);
  std::size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0)
      throw CompileError(file.string() + ":" + std::to_string(line_no) + ": expected " + what);
    out.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  return out;
}

void build_proxy(SiteRuntime& site) {
  const config::Site& c = site.cfg;
  const std::string where = "site \"" + c.name + "\": ";
  std::vector<std::string> urls{c.backend};
  for (const auto& l : c.locations)
    if (l.backend) urls.push_back(*l.backend);
  bool https = false;
  for (const auto& u : urls) {
    if (u.empty()) continue;
    auto parsed = config::parse_backend(u);
    if (!parsed) throw CompileError(where + "backend \"" + u + "\" is not a usable address");
    https |= parsed->kind == config::BackendUrl::Kind::Https;
    site.backends.emplace(u, *parsed);
  }
  if (https) {
    site.backend_tls.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX* ctx = site.backend_tls.get();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (c.proxy.verify) {
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
      if (c.proxy.trusted_cas.empty()) {
        SSL_CTX_set_default_verify_paths(ctx);
      } else {
        X509_STORE* store = SSL_CTX_get_cert_store(ctx);
        try {
          for (const auto& f : c.proxy.trusted_cas)
            for (auto& cert : pki::load_certificates(f)) X509_STORE_add_cert(store, cert.get());
        } catch (const pki::LoadError& e) {
          throw CompileError(where + "proxy.trusted_cas: " + e.what());
        }
      }
    }
  }
  if (!c.forward.assertion.key_file.empty()) {
    try {
      site.signer = std::make_shared<pki::JwtSigner>(c.forward.assertion.key_file);
    } catch (const pki::LoadError& e) {
      throw CompileError(where + "forward.assertion.key_file: " + e.what());
    }
  }
}

void build_auth(SiteRuntime& site, const std::filesystem::path& base, const Clock& clock) {
  const config::Site& c = site.cfg;
  auth::SiteAuth& a = site.auth;
  const std::string where = "site \"" + c.name + "\": ";
  a.mapping_enabled = c.mapping.enabled || c.directory.enabled;
  a.directory_enabled = c.directory.enabled;
  if (c.directory.enabled) site.directory = std::make_shared<directory::DirectoryService>(c.directory, c.name, clock);
  a.one_to_one_enabled = c.mapping.one_to_one_enabled;
  a.many_to_one_enabled = c.mapping.many_to_one_enabled;
  for (const auto& o : c.mapping.one_to_one) {
    auth::OneToOneEntry e{o.user, key_of(o.match), "", o.enabled, o.origin};
    try {
      if (!o.certificate.empty()) {
        auto cert = one_to_one_certificate(o.certificate, base);
        site.mapped_certificates.push_back(
            {o.user, o.origin, pki::subject_text(cert.get()), pki::to_unix(X509_get0_notAfter(cert.get()))});
        auto values = auth::one_to_one_values(e.key, pki::cert_facts(cert.get()));
        if (values.empty() || values.front().empty())
          throw CompileError("the certificate has no " + o.match + " to match on");
        e.value = values.front();
      } else {
        e.value = auth::normalize_one_to_one_value(e.key, o.value);
        if (e.value.empty())
          throw CompileError("value \"" + o.value + "\" is not a valid " + o.match +
                             (e.key == auth::OneToOneKey::IssuerSerial
                                  ? " (expected \"SERIAL-HEX;ISSUER DN\")"
                                  : e.key == auth::OneToOneKey::PublicKey
                                        ? " (expected 64 hex digits of SHA-256)" : ""));
      }
    } catch (const pki::LoadError& err) {
      throw CompileError(where + o.origin + ": certificate: " + err.what());
    } catch (const CompileError& err) {
      throw CompileError(where + o.origin + ": " + err.what());
    }
    if (auto earlier = a.one_to_one.add(std::move(e)))
      throw CompileError(where + o.origin + ": maps the same " + o.match + " as " + *earlier +
                         " (one certificate, one user)");
  }
  for (const auto& m : c.mapping.many_to_one) {
    auth::ManyToOneMapping mm{m.name, m.description, m.user, m.allow, m.enabled, {}, m.origin};
    for (const auto& r : m.rules)
      mm.rules.push_back({r.field == "Issuer" ? auth::Field::Issuer : auth::Field::Subject,
                          r.subfield, r.match, auth::Wildcard(r.match, r.case_sensitive)});
    a.many_to_one.add(std::move(mm));
  }
  a.many_to_one.seal();
  a.basic_enabled = c.basic.enabled;
  a.realm = c.basic.realm;
  try {
    if (!c.basic.users_file.empty()) {
      for (auto& [user, hash] : read_colon_file(c.basic.users_file, "user:hash")) {
        if (hash.size() < 3 || hash[0] != '$')
          throw CompileError(c.basic.users_file.string() + ": user \"" + user +
                             "\": the password must be a crypt(3) hash ($2y$ bcrypt, $5$/$6$ "
                             "sha-crypt or $y$ yescrypt); create it with `certgate users add`");
        site.basic_users[auth::fold(user)] = hash;
      }
    }
    if (!c.groups_file.empty()) {
      for (auto& [group, members] : read_colon_file(c.groups_file, "group: user user ...")) {
        std::size_t p = 0;
        while (p < members.size()) {
          auto end = members.find_first_of(" \t,", p);
          std::string user = members.substr(p, end == std::string::npos ? std::string::npos : end - p);
          if (!user.empty()) a.groups[auth::fold(user)].push_back(group);
          if (end == std::string::npos) break;
          p = end + 1;
        }
      }
    }
  } catch (const pki::LoadError& err) {
    throw CompileError(where + err.what());
  }
}

}  // namespace

bool path_in_location(std::string_view path, std::string_view location) {
  if (location == "/") return true;
  if (path.size() < location.size()) return false;
  for (std::size_t i = 0; i < location.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(path[i])) !=
        std::tolower(static_cast<unsigned char>(location[i])))
      return false;
  return path.size() == location.size() || path[location.size()] == '/';
}

void SiteRuntime::finalize_policies() {
  site_policy = auth::LocationPolicy{cfg.ssl_flags, cfg.anonymous, false, {}, &auth};
  auto lowered = [](const std::vector<std::string>& names) {
    std::vector<std::string> out;
    for (const auto& n : names) out.push_back(lower(n));
    return out;
  };
  site_hidden = http::HiddenSegments{lowered(cfg.hidden_segments), cfg.allow_dot_segments};
  hidden_varies = false;
  error_pages.clear();
  for (const auto& page : cfg.error_pages) error_pages.push_back({page.status, page.substatus, page.body});
  for (auto& target : locations) {
    auth::LocationPolicy p = site_policy;
    http::HiddenSegments hidden = site_hidden;
    std::string cache_control = cfg.authenticated_cache_control;
    for (const auto& loc : locations) {  // shortest first: the nearest location applies last
      if (!path_in_location(target.path, loc.path)) continue;
      const config::Location& l = loc.cfg;
      if (l.ssl_flags) p.ssl_flags = *l.ssl_flags;
      if (l.anonymous) p.anonymous = *l.anonymous;
      if (l.require_password) p.require_password = *l.require_password;
      if (l.token_login) p.token_login = *l.token_login;
      if (l.allow_users) p.access.allow_users = *l.allow_users;
      if (l.deny_users) p.access.deny_users = *l.deny_users;
      if (l.allow_groups) p.access.allow_groups = *l.allow_groups;
      if (l.deny_groups) p.access.deny_groups = *l.deny_groups;
      if (l.hidden_segments) hidden.names = lowered(*l.hidden_segments);
      if (l.allow_dot_segments) hidden.allow_dot_segments = *l.allow_dot_segments;
      if (l.authenticated_cache_control) cache_control = *l.authenticated_cache_control;
    }
    target.cache_control = std::move(cache_control);
    target.policy = std::move(p);
    hidden_varies |= target.cfg.hidden_segments || target.cfg.allow_dot_segments;
    target.hidden = std::move(hidden);
  }
}

const http::HiddenSegments& SiteRuntime::hidden_for(std::string_view path) const {
  if (!hidden_varies) return site_hidden;
  for (auto it = locations.rbegin(); it != locations.rend(); ++it)
    if (path_in_location(path, it->path)) return it->hidden;
  return site_hidden;
}

const std::string& SiteRuntime::cache_control_for(std::string_view path) const {
  for (auto it = locations.rbegin(); it != locations.rend(); ++it)
    if (path_in_location(path, it->path)) return it->cache_control;
  return cfg.authenticated_cache_control;
}

const std::string& SiteRuntime::backend_for(std::string_view path) const {
  for (auto it = locations.rbegin(); it != locations.rend(); ++it)
    if (it->cfg.backend && path_in_location(path, it->path)) return *it->cfg.backend;
  return cfg.backend;
}

const auth::LocationPolicy& SiteRuntime::policy_for(std::string_view path) const {
  // Every location that matches the path encloses the deepest one that matches, so the
  // deepest one's precomputed policy already holds them all.
  for (auto it = locations.rbegin(); it != locations.rend(); ++it)
    if (path_in_location(path, it->path)) return it->policy;
  return site_policy;
}

const ListenerRuntime::Route* ListenerRuntime::route_for_host(std::string_view host) const {
  for (const auto& r : routes)
    if (!r.host.empty() && r.host == host) return &r;
  return default_route();
}

const ListenerRuntime::Route* ListenerRuntime::default_route() const {
  for (const auto& r : routes)
    if (r.host.empty()) return &r;
  return nullptr;
}

std::shared_ptr<const Snapshot> compile(config::Config cfg, std::uint64_t generation, const Clock& clock) {
  auto snap = std::make_shared<Snapshot>();
  snap->generation = generation;
  snap->warnings = cfg.warnings;
  for (std::size_t i = 0; i < cfg.sites.size(); ++i) {
    SiteRuntime site;
    site.cfg = cfg.sites[i];
    site.index = i;
    site.trust = build_trust(site.cfg);
    build_auth(site, cfg.base, clock);
    build_proxy(site);
    if (site.cfg.step_up.enabled) {
      try {
        site.step_up_key = std::make_shared<const session::Key>(session::load_key(site.cfg.step_up.key_file));
      } catch (const std::runtime_error& e) {
        throw CompileError("site \"" + site.cfg.name + "\": step_up.key_file: " + e.what());
      }
    }
    for (const auto& l : site.cfg.locations) site.locations.push_back({lower(l.path), l, {}, {}});
    std::stable_sort(site.locations.begin(), site.locations.end(),
                     [](const auto& a, const auto& b) { return a.path.size() < b.path.size(); });
    site.requests_certificate = site.cfg.ssl_flags.negotiates();
    for (const auto& l : site.cfg.locations)
      site.requests_certificate |= l.ssl_flags && l.ssl_flags->negotiates();
    snap->sites.push_back(std::move(site));
  }
  for (auto& site : snap->sites) site.finalize_policies();  // addresses are final now
  std::shared_ptr<const tls::TicketKeyFiles> ticket_keys;
  if (!cfg.server.ticket_key_files.empty()) {
    try {
      ticket_keys = tls::load_ticket_key_files(cfg.server.ticket_key_files);
    } catch (const std::runtime_error& e) {
      throw CompileError(std::string("server.") + e.what());
    }
  }
  for (const auto& site : snap->sites) {
    for (const auto& b : site.cfg.bindings) {
      auto it = std::find_if(snap->listeners.begin(), snap->listeners.end(), [&](const auto& l) {
        return l.address == b.address && l.port == b.port;
      });
      if (it == snap->listeners.end()) {
        snap->listeners.push_back(ListenerRuntime{b.address, b.port, b.https, b.proxy_protocol, {}, {}});
        it = std::prev(snap->listeners.end());
        for (const auto& c : b.proxy_protocol_from) it->proxy_from.push_back(*net::Cidr::parse(c));
      }
      SSL_CTX* ctx = nullptr;
      if (b.https) {
        auto built = tls::make_server_context(site, b, cfg.server, clock, ticket_keys);
        for (auto& w : built.warnings) snap->warnings.push_back(std::move(w));
        ctx = built.ctx.get();
        snap->contexts.push_back(std::move(built.ctx));
      }
      it->routes.push_back({b.host, site.index, ctx, b.on_demand});
    }
  }
  for (auto& l : snap->listeners)
    if (l.https) tls::attach_sni_router(l);
  snap->cfg = std::move(cfg);
  return snap;
}

}  // namespace certgate::runtime
