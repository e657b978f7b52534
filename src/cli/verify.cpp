// `certgate verify`: the server's validation code path on a certificate file, with the
// verdict as status.substatus and one block per chain element.
#include "auth/decide.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "pki/chain_verify.hpp"
#include "pki/jwt.hpp"
#include "pki/load.hpp"
#include "pki/x509_text.hpp"
#include "http/path.hpp"
#include "pipeline/evidence.hpp"
#include "revocation/cert_urls.hpp"
#include "revocation/online.hpp"
#include "runtime/snapshot.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>

namespace certgate::cli {
namespace {

std::string json_str(std::string_view s) { return pki::json_string(std::string(s)); }

pki::RevocationMode mode_of(const std::string& word, pki::RevocationMode fallback) {
  if (word == "online") return pki::RevocationMode::Online;
  if (word == "cache-only") return pki::RevocationMode::CacheOnly;
  if (word == "off") return pki::RevocationMode::Off;
  return fallback;
}

// certutil -verify -urlfetch: each certificate's URLs, and what fetching each one did.
void print_urls(const std::map<std::string, revocation::CertUrls>& urls_by_subject,
                const std::vector<revocation::FetchEvent>& events, const auth::ChainReport& r) {
  std::cout << "  URL retrieval:\n";
  auto line = [&](std::string_view what, const std::string& url, const std::string& subject) {
    const revocation::FetchEvent* last = nullptr;
    for (const auto& e : events)
      if (e.url == url && e.subject == subject) last = &e;
    if (!last)
      for (const auto& e : events)
        if (e.url == url) last = &e;
    if (!last)
      std::cout << fmt::format("      {:<5} {}\n            not fetched (not needed for this verdict)\n", what, url);
    else
      std::cout << fmt::format("      {:<5} {}\n            {}: {}  Time: {} ms  Route: {}\n", what, url,
                               last->ok ? "Verified" : "Failed", last->result, last->elapsed_ms, last->route);
  };
  for (std::size_t i = 0; i < r.elements.size(); ++i) {
    const auto& el = r.elements[i];
    std::cout << fmt::format("  [{}] {}\n", i, el.subject);
    auto it = urls_by_subject.find(el.subject);
    if (it == urls_by_subject.end() ||
        (it->second.crl.empty() && it->second.ocsp.empty() && it->second.ca_issuers.empty() && it->second.delta_crl.empty())) {
      std::cout << "      (names no AIA or CDP URL)\n";
      continue;
    }
    for (const auto& u : it->second.ca_issuers) line("AIA", u, el.subject);
    for (const auto& u : it->second.ocsp) line("OCSP", u, el.subject);
    for (const auto& dp : it->second.crl) line("CDP", dp.url, el.subject);
    for (const auto& u : it->second.delta_crl) line("Delta", u, el.subject);
  }
}

// The command line's weak-crypto and profile options over `o` (a site's, or the defaults), so
// `verify --ca` with options matches a site with the same settings.
void apply_strength_args(const VerifyArgs& a, pki::TrustOptions& o) {
  if (a.min_rsa_bits) o.min_rsa_bits = *a.min_rsa_bits;
  if (a.max_chain_depth) o.max_chain_depth = *a.max_chain_depth;
  if (a.allow_sha1) o.allow_sha1 = true;
  if (a.no_strict) o.x509_strict = false;
}

bool has_strength_args(const VerifyArgs& a) {
  return a.min_rsa_bits || a.max_chain_depth || a.allow_sha1 || a.no_strict;
}

std::shared_ptr<const pki::TrustStore> trust_from_args(const VerifyArgs& a) {
  std::vector<pki::X509Ptr> anchors, untrusted;
  std::vector<pki::X509CrlPtr> crls;
  for (const auto& f : a.cas)
    for (auto& c : pki::load_certificates(f)) anchors.push_back(std::move(c));
  for (const auto& f : a.untrusted)
    for (auto& c : pki::load_certificates(f)) untrusted.push_back(std::move(c));
  for (const auto& f : a.crls)
    for (auto& c : pki::load_crls(f)) crls.push_back(std::move(c));
  pki::TrustOptions o;
  o.revocation = mode_of(a.revocation, pki::RevocationMode::CacheOnly);
  o.usage_check = !a.no_usage_check;
  o.policies = a.policies;
  o.explicit_policy = a.explicit_policy;
  o.inhibit_policy_mapping = a.inhibit_policy_mapping;
  o.inhibit_any_policy = a.inhibit_any_policy;
  apply_strength_args(a, o);
  return std::make_shared<pki::TrustStore>(std::move(anchors), std::move(untrusted),
                                           std::move(crls), std::move(o));
}

// `with_user`: a site's decision (-c), which names the user the server would log.
// `note`: what the verdict does not say by itself (empty: nothing).
void print_text(const auth::Outcome& o, const auth::ChainReport& r, bool with_user, const std::string& note = {}) {
  const auto& row = o.row();
  if (o.allowed()) std::cout << "200.0 OK\n";
  else std::cout << row.status << "." << row.substatus << " " << o.reason << "\n";
  if (!o.allowed()) std::cout << fmt::format("  win32: {} (0x{:08X}) {}\n", row.win32, row.win32, row.token);
  if (with_user)
    std::cout << fmt::format("  user: {}{}\n", o.user.empty() ? "-" : o.user,
                             o.auth_method.empty() ? "" : " (" + o.auth_method + (o.rule.empty() ? "" : ", by " + o.rule) + ")");
  if (!note.empty()) std::cout << "  note: " << note << "\n";
  for (std::size_t i = 0; i < r.elements.size(); ++i) {
    const auto& e = r.elements[i];
    std::cout << fmt::format("  [{}] subject:    {}\n", i, e.subject)
              << fmt::format("      issuer:     {}\n", e.issuer)
              << fmt::format("      serial:     {}\n", e.serial)
              << fmt::format("      valid:      {} .. {}\n", pki::utc_text(e.not_before),
                             pki::utc_text(e.not_after))
              << fmt::format("      revocation: {}\n", e.revocation);
    if (!e.problem.empty()) std::cout << fmt::format("      problem:    {}\n", e.problem);
  }
}

void print_json(const auth::Outcome& o, const auth::ChainReport& r, bool with_user, const std::string& note = {}) {
  const auto& row = o.row();
  std::cout << fmt::format(R"({{"status":{},"substatus":{},"win32":{},"token":{},"accepted":{},"reason":{},)",
                           row.status, row.substatus, row.win32, json_str(row.token),
                           o.allowed() ? "true" : "false", json_str(o.reason));
  if (with_user) std::cout << fmt::format(R"("user":{},)", json_str(o.user));
  if (!note.empty()) std::cout << fmt::format(R"("note":{},)", json_str(note));
  std::cout << R"("chain":[)";
  for (std::size_t i = 0; i < r.elements.size(); ++i) {
    const auto& e = r.elements[i];
    std::cout << (i ? "," : "")
              << fmt::format(R"({{"subject":{},"issuer":{},"serial":{},"not_before":{},"not_after":{},"revocation":{},"problem":{}}})",
                             json_str(e.subject), json_str(e.issuer), json_str(e.serial),
                             json_str(pki::utc_text(e.not_before)), json_str(pki::utc_text(e.not_after)),
                             json_str(e.revocation), json_str(e.problem));
  }
  std::cout << "]}\n";
}

}  // namespace

int verify(const VerifyArgs& a) {
  std::shared_ptr<const pki::TrustStore> trust;
  std::shared_ptr<const runtime::Snapshot> snap;
  const runtime::SiteRuntime* site = nullptr;
  revocation::StoreSettings settings;
  // Without a site, the command line's trust on a location that asks for a certificate and lets
  // anyone with a valid one in (no mapping): the chain verdict alone.
  runtime::SiteRuntime command_line;
  command_line.cfg.name = "(command line)";
  auth::LocationPolicy policy{auth::SslFlags{auth::kSslNegotiateCert}, true};
  const auth::LocationPolicy* location = &policy;
  std::string note;
  try {
    if (!a.config_file.empty()) {
      snap = runtime::compile(config::load(a.config_file), 1);
      for (const auto& s : snap->sites)
        if (s.cfg.name == a.site) site = &s;
      if (site == nullptr) {
        std::cerr << "certgate verify: no site named \"" << a.site << "\" in " << a.config_file << "\n";
        return kUsage;
      }
      if (!site->trust) {
        std::cerr << "certgate verify: site \"" << a.site << "\" trusts no issuer (client_certificates.trusted_cas)\n";
        return kUsage;
      }
      trust = site->trust;
      settings = revocation::store_settings(snap->cfg.server);
      const auto path = http::normalize_target(a.path);
      if (!path) {
        std::cerr << "certgate verify: --path " << a.path << " is not a valid request path\n";
        return kUsage;
      }
      // The site's decision at the path (mapping and authorization included); a location that
      // does not ask for a certificate is decided as if it did, since validating is the point.
      location = &site->policy_for(path->path);
      if (!location->ssl_flags.negotiates()) {
        // Said, or an administrator takes "200, user X" for what the server does there.
        note = "the location " + a.path + " does not ask for a client certificate (ssl_flags " +
               auth::to_string(location->ssl_flags) + "): the server decides its requests without one (" +
               (location->anonymous ? "anonymous" : "no anonymous access") +
               "); this is the verdict the certificate would get if the location asked for it";
        policy = *location;
        policy.ssl_flags.bits |= auth::kSslNegotiateCert;
        location = &policy;
      }
      // The site's trust with another revocation mode, or other weak-crypto settings.
      if (!a.revocation.empty() || a.urlfetch || has_strength_args(a)) {
        pki::TrustOptions o = trust->options();
        o.revocation = mode_of(a.revocation, a.urlfetch && o.revocation != pki::RevocationMode::Off
                                                 ? pki::RevocationMode::Online : o.revocation);
        apply_strength_args(a, o);
        trust = trust->with_options(std::move(o));
      }
    } else {
      if (a.cas.empty()) {
        std::cerr << "certgate verify: give at least one --ca FILE, or -c FILE --site NAME\n";
        return kUsage;
      }
      VerifyArgs b = a;
      if (a.urlfetch && b.revocation.empty()) b.revocation = "online";
      trust = trust_from_args(b);
    }
  } catch (const std::exception& e) {
    std::cerr << "certgate verify: " << e.what() << "\n";
    return kUsage;
  }
  if (!a.cache_dir.empty()) settings.cache_dir = a.cache_dir;
  if (!site) {
    command_line.trust = trust;
    site = &command_line;
  }

  std::string bytes;
  try {
    bytes = pki::read_file(a.cert);
  } catch (const pki::LoadError& e) {
    std::cerr << "certgate verify: " << e.what() << "\n";
    return kUsage;
  }
  auto certs = pki::parse_certificates(bytes);
  if (certs.empty()) {
    pki::openssl_errors();  // discard the parser's complaints: the verdict says it plainly
    auth::ChainReport report{auth::ChainFault::Malformed,
                             a.cert + " holds no readable certificate (neither PEM nor DER)", {}};
    auth::RequestEvidence ev{true, 256, true, true, &report};
    auth::Outcome outcome = auth::decide(policy, ev);
    if (a.json) print_json(outcome, report, false);
    else print_text(outcome, report, false);
    return kRejected;
  }
  // The server's evidence pipeline, its needs met here: fetches through the same store
  // settings and cache files, directory searches with the site's settings.
  revocation::Store store(settings);
  std::mutex mu;
  std::vector<revocation::FetchEvent> events;
  store.set_recorder([&](const revocation::FetchEvent& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  });
  std::optional<runtime::ManualClock> fixed;  // --at: the time stands still there
  if (a.at) fixed.emplace(*a.at);
  tls::TlsFacts facts = tls::TlsFacts::from_certificates(certs, true);
  pipeline::Inputs in;
  in.site = site;
  in.policy = location;
  in.tls = &facts;
  in.store = &store;
  in.trust = trust.get();
  in.detail = pki::Detail::Full;
  if (fixed) in.clock = &*fixed;
  pipeline::RequestState state(in);
  pipeline::run_to_decision(state, std::nullopt);
  auth::ChainReport none;
  const auth::ChainReport& report = state.evidence().chain ? *state.evidence().chain : none;
  const auth::Outcome& outcome = state.outcome();
  std::map<std::string, revocation::CertUrls> urls_by_subject;
  std::vector<revocation::FetchEvent> fetch_events;
  if (a.urlfetch && !a.json) {
    urls_by_subject[pki::subject_text(certs[0].get())] = revocation::cert_urls(certs[0].get());
    for (std::size_t i = 1; i < certs.size(); ++i)
      urls_by_subject[pki::subject_text(certs[i].get())] = revocation::cert_urls(certs[i].get());
    for (int i = 0; i < sk_X509_num(trust->intermediates()); ++i) {
      X509* c = sk_X509_value(trust->intermediates(), i);
      urls_by_subject.emplace(pki::subject_text(c), revocation::cert_urls(c));
    }
    for (const auto& c : store.issuer_certificates())
      urls_by_subject.emplace(pki::subject_text(c.get()), revocation::cert_urls(c.get()));
    std::lock_guard lock(mu);
    fetch_events = events;
  }
  const bool with_user = site != &command_line;
  if (a.json) print_json(outcome, report, with_user, note);
  else print_text(outcome, report, with_user, note);
  if (a.urlfetch && !a.json) print_urls(urls_by_subject, fetch_events, report);
  return outcome.allowed() ? kOk : kRejected;
}

}  // namespace certgate::cli
