#include "runtime/snapshot.hpp"

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
  opts.revocation = cc.revocation == config::Revocation::Off ? pki::RevocationMode::Off
                                                             : pki::RevocationMode::CacheOnly;
  return std::make_shared<pki::TrustStore>(std::move(anchors), std::move(intermediates),
                                           std::move(crls), std::move(opts));
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

auth::LocationPolicy SiteRuntime::policy_for(std::string_view path) const {
  auth::LocationPolicy p{cfg.ssl_flags, cfg.anonymous};
  for (const auto& loc : locations) {
    if (!path_in_location(path, loc.path)) continue;
    if (loc.cfg.ssl_flags) p.ssl_flags = *loc.cfg.ssl_flags;
    if (loc.cfg.anonymous) p.anonymous = *loc.cfg.anonymous;
  }
  return p;
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

std::shared_ptr<const Snapshot> compile(config::Config cfg, std::uint64_t generation) {
  auto snap = std::make_shared<Snapshot>();
  snap->generation = generation;
  snap->warnings = cfg.warnings;
  for (std::size_t i = 0; i < cfg.sites.size(); ++i) {
    SiteRuntime site;
    site.cfg = cfg.sites[i];
    site.index = i;
    site.trust = build_trust(site.cfg);
    for (const auto& l : site.cfg.locations) site.locations.push_back({lower(l.path), l});
    std::stable_sort(site.locations.begin(), site.locations.end(),
                     [](const auto& a, const auto& b) { return a.path.size() < b.path.size(); });
    site.requests_certificate = site.cfg.ssl_flags.negotiates();
    for (const auto& l : site.cfg.locations)
      site.requests_certificate |= l.ssl_flags && l.ssl_flags->negotiates();
    snap->sites.push_back(std::move(site));
  }
  for (const auto& site : snap->sites) {
    for (const auto& b : site.cfg.bindings) {
      auto it = std::find_if(snap->listeners.begin(), snap->listeners.end(), [&](const auto& l) {
        return l.address == b.address && l.port == b.port;
      });
      if (it == snap->listeners.end()) {
        snap->listeners.push_back(ListenerRuntime{b.address, b.port, b.https, {}});
        it = std::prev(snap->listeners.end());
      }
      SSL_CTX* ctx = nullptr;
      if (b.https) {
        auto built = tls::make_server_context(site, b, generation);
        for (auto& w : built.warnings) snap->warnings.push_back(std::move(w));
        ctx = built.ctx.get();
        snap->contexts.push_back(std::move(built.ctx));
      }
      it->routes.push_back({b.host, site.index, ctx});
    }
  }
  for (auto& l : snap->listeners)
    if (l.https) tls::attach_sni_router(l);
  snap->cfg = std::move(cfg);
  return snap;
}

}  // namespace certgate::runtime
