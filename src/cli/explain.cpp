// `certgate explain`: the verdict a request with a given certificate would get on a site and
// path, with every step shown: validation, each mapping considered (rule by rule), the user,
// authorization, and the final status. `--compare OLD.toml DIR` dry-runs a config change.
#include "auth/decide.hpp"
#include "auth/directory.hpp"
#include "directory/ldap_connection.hpp"
#include "http/path.hpp"
#include "http/request_filter.hpp"
#include "cli/commands.hpp"
#include "pki/cert_facts.hpp"
#include "pki/chain_verify.hpp"
#include "pki/load.hpp"
#include "pki/x509_text.hpp"
#include "runtime/snapshot.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

namespace certgate::cli {
namespace {

std::shared_ptr<const runtime::Snapshot> load_config(const std::string& file) {
  return runtime::compile(config::load(file), 1);
}

const runtime::SiteRuntime* find_site(const runtime::Snapshot& snap, const std::string& name) {
  for (const auto& s : snap.sites)
    if (s.cfg.name == name) return &s;
  return nullptr;
}

// The path as the server matches it (decoded, dot-segments resolved), or nullopt when the
// server would answer 400.
std::optional<std::string> server_path(const std::string& path) {
  auto target = http::normalize_target(path);
  if (!target) return std::nullopt;
  return target->path;
}

// The hidden segment request filtering refuses `path` for on `site` ("" when none): the server
// answers 404.8 before any certificate is looked at.
std::string hidden_in(const runtime::SiteRuntime& site, const std::string& path) {
  return std::string(http::hidden_segment(path, site.hidden_for(path)));
}

struct Evaluation {
  auth::ChainReport report;
  auth::CertFacts facts;
  auth::Outcome outcome;
  bool needs_password = false;  // two-factor: the verdict assumes the right password
  // Directory mapping, when the site has it and no one-to-one entry matched.
  std::vector<auth::DirectoryTier> plan;
  std::optional<auth::DirectoryAnswer> directory;
  std::optional<auth::Outcome> mapped;
};

// The server's decision for a request carrying `certs` (leaf first) on `site` at `path`.
// Two-factor locations are evaluated as if the mapped user's right password came along.
Evaluation evaluate(const runtime::SiteRuntime& site, const std::string& path,
                    const std::vector<pki::X509Ptr>& certs, pki::Detail detail) {
  Evaluation e;
  const auth::LocationPolicy& policy = site.policy_for(path);
  auth::RequestEvidence ev{true, 256, site.requests_certificate, !certs.empty(), nullptr, nullptr};
  if (!certs.empty() && policy.ssl_flags.negotiates()) {
    pki::X509StackView rest(sk_X509_new_null());
    for (std::size_t i = 1; i < certs.size(); ++i) sk_X509_push(rest.get(), certs[i].get());
    e.report = site.trust ? pki::verify_chain(*site.trust, certs[0].get(), rest.get(), std::nullopt, detail)
                          : auth::ChainReport{auth::ChainFault::UntrustedRoot,
                                              "site \"" + site.cfg.name + "\" trusts no issuer", {}};
    ev.chain = &e.report;
    e.facts = pki::cert_facts(certs[0].get());
    ev.cert = &e.facts;
  }
  if (ev.chain && ev.chain->fault == auth::ChainFault::None && site.auth.mapping_enabled) {
    e.mapped = auth::map_certificate(site.auth, e.facts);
    if (site.directory && auth::defers_to_directory(site.auth, *e.mapped)) {
      // The same searches the server runs, made here and now (no cache).
      directory::LdapConnection conn(site.directory->settings());
      e.plan = auth::directory_plan(e.facts, site.directory->policy());
      e.directory = conn.lookup(e.plan);
      e.mapped = auth::judge_directory(e.facts, *e.directory, site.directory->naming());
    }
    ev.mapped = &*e.mapped;
  }
  if (policy.require_password && e.mapped) {
    const auth::Outcome& mapped = *e.mapped;
    if (mapped.allowed()) {
      ev.basic = auth::PasswordCheck::Valid;
      ev.basic_user = mapped.user;
      e.needs_password = true;
    }
  }
  e.outcome = auth::decide(policy, ev);
  return e;
}

std::string code(const auth::Outcome& o) {
  const auto& r = o.row();
  return fmt::format("{}.{}", r.status, r.substatus);
}

std::string quoted_list(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "\"" : ", \"") + s + "\"";
  return out.empty() ? "(none)" : out;
}

void print_directory_trace(const runtime::SiteRuntime& site, const Evaluation& e) {
  const auto& s = site.directory->settings();
  std::cout << fmt::format("  directory mapping ({}, base {}{}):\n", fmt::join(s.urls, " "), s.base_dn,
                           s.allow_weak ? ", weak forms allowed" : ", strong forms only");
  if (!e.directory) return;
  const auth::DirectoryAnswer& d = *e.directory;
  for (const auto& tier : e.plan) {
    std::cout << fmt::format("    {} search: {}\n", tier.strong ? "strong" : "weak", tier.filter);
    for (const auto& c : tier.claims)
      std::cout << fmt::format("      {}: {}\n", auth::to_string(c.form),
                               c.form == auth::DirectoryForm::Sid ? auth::sid_from_binary(c.value) : c.value);
    if (tier.filter == d.filter) break;
  }
  using S = auth::DirectoryAnswer::Status;
  if (d.status != S::Found) {
    std::cout << "    directory error: " << d.error << "\n";
    return;
  }
  if (d.entries.empty()) std::cout << "    no account found\n";
  for (const auto& en : d.entries)
    std::cout << fmt::format("    found: {} (user \"{}\"{}{})\n", en.dn, en.user,
                             en.groups.empty() ? "" : ", groups " + quoted_list(en.groups),
                             en.sids.empty() ? "" : ", SID " + auth::sid_from_binary(en.sids.front()));
}

void print_mapping_trace(const runtime::SiteRuntime& site, const Evaluation& e) {
  const auth::CertFacts& facts = e.facts;
  const auth::SiteAuth& a = site.auth;
  std::cout << "mapping: " << (a.mapping_enabled ? "enabled" : "disabled ([sites.mapping] absent or enabled = false)") << "\n";
  if (!a.mapping_enabled) return;
  std::cout << fmt::format("  one-to-one ({} entries, {}):\n", a.one_to_one.size(),
                           a.one_to_one_enabled ? "enabled" : "disabled");
  if (a.one_to_one_enabled) {
    const auth::OneToOneEntry* hit = a.one_to_one.find(facts);
    if (hit)
      std::cout << fmt::format("    match: {} (match = {}) -> user \"{}\"\n", hit->origin,
                               auth::to_string(hit->key), hit->user);
    else
      std::cout << fmt::format("    no entry matches (certificate sha256 {}, public-key sha256 {})\n",
                               facts.der_sha256, facts.spki_sha256);
    if (hit) return;
  }
  if (site.directory) return print_directory_trace(site, e);
  std::cout << fmt::format("  many-to-one ({} mappings, {}):\n", a.many_to_one.mappings().size(),
                           a.many_to_one_enabled ? "enabled" : "disabled");
  if (!a.many_to_one_enabled) return;
  std::vector<auth::MappingTrace> trace;
  a.many_to_one.find_traced(facts, trace);
  int n = 0;
  for (const auto& t : trace) {
    const auto& m = *t.mapping;
    std::cout << fmt::format("    {}. \"{}\" ({}{}): {}\n", ++n, m.name, m.allow ? "allow" : "deny",
                             m.allow ? " as \"" + m.user + "\"" : "", t.why);
    int r = 0;
    for (const auto& rt : t.rules) {
      const auth::Rule& rule = *rt.rule;
      std::cout << fmt::format("       rule {}: {} {} = \"{}\" ({}): {} (certificate has {})\n", ++r,
                               rule.field == auth::Field::Subject ? "Subject" : "Issuer", rule.label,
                               rule.pattern_text,
                               rule.pattern.case_sensitive() ? "case-sensitive" : "case-insensitive",
                               rt.matched ? "matches" : "no match", quoted_list(rt.values));
    }
  }
  if (trace.empty() || !trace.back().matched) std::cout << "    no many-to-one mapping matches\n";
}

int explain_one(const ExplainArgs& a) {
  std::shared_ptr<const runtime::Snapshot> snap;
  try {
    snap = load_config(a.config_file);
  } catch (const std::exception& e) {
    std::cerr << "certgate explain: " << e.what() << "\n";
    return kUsage;
  }
  const auto* site = find_site(*snap, a.site);
  if (!site) {
    std::cerr << "certgate explain: no site named \"" << a.site << "\"\n";
    return kUsage;
  }
  std::vector<pki::X509Ptr> certs;
  try {
    certs = pki::load_certificates(a.cert);
  } catch (const pki::LoadError& e) {
    std::cerr << "certgate explain: " << e.what() << "\n";
    return kUsage;
  }
  const auto path = server_path(a.path);
  if (!path) {
    std::cerr << "certgate explain: --path " << a.path << " is not a valid request path (the server answers 400)\n";
    return kUsage;
  }
  const auth::LocationPolicy& policy = site->policy_for(*path);
  std::cout << fmt::format("site \"{}\", path {}: ssl_flags {}, anonymous {}{}\n", site->cfg.name, *path,
                           auth::to_string(policy.ssl_flags), policy.anonymous ? "on" : "off",
                           policy.require_password ? ", two-factor (certificate + password)" : "");
  if (const std::string seg = hidden_in(*site, *path); !seg.empty()) {
    std::cout << fmt::format("verdict: 404.8 Not Found: the path contains the hidden segment '{}' "
                             "(request filtering: hidden_segments / allow_dot_segments)\n", seg);
    std::cout << "decided by: request filtering, before any certificate is looked at\n";
    return kRejected;
  }
  Evaluation e = evaluate(*site, *path, certs, pki::Detail::Full);
  std::cout << "certificate: " << pki::subject_text(certs[0].get()) << "\n";
  if (!policy.ssl_flags.negotiates()) {
    std::cout << "validation: not done (this location does not ask for a certificate)\n";
  } else if (e.report.fault == auth::ChainFault::None) {
    std::cout << "validation: OK\n";
  } else {
    std::cout << "validation: FAILED: " << e.report.reason << "\n";
  }
  for (std::size_t i = 0; i < e.report.elements.size(); ++i) {
    const auto& el = e.report.elements[i];
    std::cout << fmt::format("  [{}] {} (valid {} .. {}; revocation: {})\n", i, el.subject,
                             pki::utc_text(el.not_before), pki::utc_text(el.not_after), el.revocation);
  }
  if (policy.ssl_flags.negotiates() && e.report.fault == auth::ChainFault::None)
    print_mapping_trace(*site, e);
  const auth::Outcome& o = e.outcome;
  if (!o.user.empty() || o.allowed())
    std::cout << fmt::format("user: {} ({}{})\n", o.user.empty() ? "anonymous" : "\"" + o.user + "\"",
                             o.auth_method.empty() ? "-" : o.auth_method,
                             o.rule.empty() ? "" : ", by " + o.rule);
  const auto& acc = policy.access;
  if (!acc.empty())
    std::cout << fmt::format("authorization: allow users {}, deny users {}, allow groups {}, deny groups {}\n",
                             quoted_list(acc.allow_users), quoted_list(acc.deny_users),
                             quoted_list(acc.allow_groups), quoted_list(acc.deny_groups));
  if (e.needs_password)
    std::cout << "note: this location also asks for the password of \"" << o.user
              << "\" (Basic); the verdict assumes the right one is given\n";
  std::cout << fmt::format("verdict: {} {}{}\n", code(o), o.allowed() ? "OK" : o.row().title,
                           o.reason.empty() ? "" : ": " + o.reason);
  std::cout << fmt::format("decided by: {}:{}\n", std::filesystem::path(o.where.file_name()).filename().string(),
                           o.where.line());
  return o.allowed() ? kOk : kRejected;
}

int compare(const ExplainArgs& a) {
  std::shared_ptr<const runtime::Snapshot> now, before;
  try {
    now = load_config(a.config_file);
    before = load_config(a.compare_with);
  } catch (const std::exception& e) {
    std::cerr << "certgate explain: " << e.what() << "\n";
    return kUsage;
  }
  const auto* site_now = find_site(*now, a.site);
  const auto* site_before = find_site(*before, a.site);
  if (!site_now || !site_before) {
    std::cerr << "certgate explain: site \"" << a.site << "\" must exist in both configurations\n";
    return kUsage;
  }
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(a.cert, ec)) {
    auto ext = entry.path().extension().string();
    if (entry.is_regular_file() && (ext == ".pem" || ext == ".crt" || ext == ".cer" || ext == ".der"))
      files.push_back(entry.path());
  }
  if (ec) {
    std::cerr << "certgate explain: " << a.cert << ": " << ec.message() << "\n";
    return kUsage;
  }
  std::sort(files.begin(), files.end());
  const auto path = server_path(a.path);
  if (!path) {
    std::cerr << "certgate explain: --path " << a.path << " is not a valid request path (the server answers 400)\n";
    return kUsage;
  }
  const std::string hidden_before = hidden_in(*site_before, *path), hidden_now = hidden_in(*site_now, *path);
  std::size_t checked = 0, changed = 0;
  for (const auto& f : files) {
    auto certs = pki::parse_certificates(pki::read_file(f));
    if (certs.empty()) continue;  // keys and other PEM files in the folder
    ++checked;
    auto show = [&](const runtime::SiteRuntime& site, const std::string& hidden) -> std::string {
      if (!hidden.empty()) return "404.8 -";
      const auth::Outcome o = evaluate(site, *path, certs, pki::Detail::Brief).outcome;
      return code(o) + " " + (o.user.empty() ? "-" : o.user);
    };
    const std::string old_answer = show(*site_before, hidden_before), new_answer = show(*site_now, hidden_now);
    if (old_answer == new_answer) continue;
    ++changed;
    std::cout << fmt::format("{}: {} -> {}\n", f.filename().string(), old_answer, new_answer);
  }
  std::cout << fmt::format("{} certificate(s) compared, {} would change\n", checked, changed);
  return changed ? kRejected : kOk;
}

}  // namespace

int explain(const ExplainArgs& a) { return a.compare_with.empty() ? explain_one(a) : compare(a); }

}  // namespace certgate::cli
