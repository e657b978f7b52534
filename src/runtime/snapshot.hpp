#pragma once
// An immutable, compiled configuration generation: decoded trust stores, TLS contexts and
// location policies. Built once at startup (and on reload), shared read-only by all loops;
// a connection decides each request under the newest one (http/connection.hpp: Generation).
#include "auth/policy.hpp"
#include "config/backend.hpp"
#include "config/config.hpp"
#include "directory/directory_service.hpp"
#include "http/error_page.hpp"
#include "http/request_filter.hpp"
#include "pki/jwt.hpp"
#include "pki/validation_cache.hpp"
#include "pki/openssl_ptr.hpp"
#include "pki/trust_store.hpp"
#include "net/cidr.hpp"
#include "runtime/clock.hpp"
#include "session/token.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace certgate::runtime {

struct CompiledLocation {
  std::string path;  // lower case, no trailing slash ("/" for the root)
  config::Location cfg;
  auth::LocationPolicy policy;  // effective: site, then every enclosing location, this last
  http::HiddenSegments hidden;  // effective request filtering, inherited the same way
  std::string cache_control;    // effective authenticated_cache_control
};

// A one-to-one mapping's certificate, kept for the admin status page (expiry warnings).
struct MappedCertificate {
  std::string user, origin, subject;
  std::int64_t not_after = 0;  // unix seconds
};

struct SiteRuntime {
  config::Site cfg;
  std::vector<MappedCertificate> mapped_certificates;
  std::size_t index = 0;
  std::shared_ptr<const pki::TrustStore> trust;  // null when the site trusts no issuer
  // Successful validations of this generation (thread-safe; see pki/validation_cache.hpp).
  std::shared_ptr<pki::ValidationCache> validations = std::make_shared<pki::ValidationCache>();
  std::vector<CompiledLocation> locations;       // shortest path first
  bool requests_certificate = false;             // some location has SslNegotiateCert
  auth::SiteAuth auth;                           // mapping tables, Basic switch, groups
  std::unordered_map<std::string, std::string> basic_users;  // user → crypt(3) hash
  std::unordered_map<std::string, config::BackendUrl> backends;  // as written → parsed
  std::shared_ptr<const pki::JwtSigner> signer;  // [sites.forward.assertion]; null = off
  pki::SslCtxPtr backend_tls;                    // client context for https backends
  std::shared_ptr<directory::DirectoryService> directory;  // [sites.directory_mapping]; null = off
  std::shared_ptr<const session::Key> step_up_key;  // [sites.step_up]; null = off

  // The backend serving `path` ("" = static files): the nearest location that names one.
  const std::string& backend_for(std::string_view path) const;

  auth::LocationPolicy site_policy;

  // Site settings overridden by every enclosing location, nearest last (behaviour.md §1 step 1).
  // `path` is the normalized, decoded request path. Precomputed: no work per request beyond
  // finding the deepest matching location.
  const auth::LocationPolicy& policy_for(std::string_view path) const;
  // Computes site_policy and every location's policy; call once the site has its final address.
  void finalize_policies();

  http::HiddenSegments site_hidden;
  bool hidden_varies = false;  // some location overrides request filtering
  // The request filtering in force at `path` (one comparison when no location overrides it).
  const http::HiddenSegments& hidden_for(std::string_view path) const;

  // Cache-Control for an authenticated answer at `path` ("" = none), inherited as the policy is.
  const std::string& cache_control_for(std::string_view path) const;
  http::CustomPages error_pages;  // [sites.error_pages], bodies read at load
};

// One listening endpoint and the sites reachable through it.
struct ListenerRuntime {
  std::string address;
  std::uint16_t port = 0;
  bool https = true;
  // PROXY protocol: a header first, accepted from these peers only (http/proxy_accept.hpp).
  bool proxy_protocol = false;
  std::vector<net::Cidr> proxy_from;
  struct Route {
    std::string host;  // empty = default
    std::size_t site;
    SSL_CTX* ctx = nullptr;  // owned by Snapshot::contexts_ (https only)
    bool on_demand = false;  // client_certificate = "on-demand"
  };
  std::vector<Route> routes;

  const Route* route_for_host(std::string_view host) const;  // exact match, else default
  const Route* default_route() const;
};

class Snapshot {
 public:
  config::Config cfg;
  std::uint64_t generation = 0;
  std::vector<SiteRuntime> sites;
  std::vector<ListenerRuntime> listeners;
  std::vector<pki::SslCtxPtr> contexts;
  std::vector<std::string> warnings;
};

struct CompileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Loads every certificate, key and CRL the config names and builds the TLS contexts.
// Throws CompileError (or pki::LoadError) naming the site, key and file that is wrong.
// `clock`: what the generation's caches (directory answers, TLS sessions and tickets) expire by.
std::shared_ptr<const Snapshot> compile(config::Config cfg, std::uint64_t generation,
                                        const Clock& clock = system_clock());

// Segment-wise, case-insensitive prefix match: "/admin" matches "/admin/x", not "/administrator".
bool path_in_location(std::string_view path, std::string_view location);

}  // namespace certgate::runtime
