// `certgate explain`: the verdict a request with a given certificate would get on a site and
// path, with every step shown: validation, each mapping considered (rule by rule), the user,
// authorization, and the final status. `--compare OLD.toml DIR` dry-runs a config change.
#include "auth/decide.hpp"
#include "auth/directory.hpp"
#include "http/path.hpp"
#include "http/request_filter.hpp"
#include "cli/commands.hpp"
#include "pki/cert_facts.hpp"
#include "pki/chain_verify.hpp"
#include "pki/load.hpp"
#include "pki/x509_text.hpp"
#include "pipeline/evidence.hpp"
#include "revocation/store.hpp"
#include "runtime/snapshot.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
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

// The server's evidence pipeline (pipeline/evidence.hpp) run to its decision on this thread.
struct Evaluation {
  tls::TlsFacts tls;
  std::optional<pipeline::RequestState> state;
  pipeline::SyncTrace trace;
  auth::ChainReport no_report;  // when the location does not look at the certificate

  const auth::ChainReport& report() const {
    const auth::ChainReport* r = state->evidence().chain;
    return r ? *r : no_report;
  }
  const auth::Outcome& outcome() const { return state->outcome(); }
};

// The server's decision for a request carrying `certs` (leaf first) on `site` at `path`, with
// the same revocation store settings and files, directory and password check. Two-factor
// locations offer the mapped user's password: `password`, or (nullopt) the right one assumed.
std::unique_ptr<Evaluation> evaluate(const runtime::SiteRuntime& site, const std::string& path,
                                     const std::vector<pki::X509Ptr>& certs, pki::Detail detail,
                                     revocation::Store& store, const std::optional<std::string>& password) {
  auto e = std::make_unique<Evaluation>();
  e->tls = tls::TlsFacts::from_certificates(certs, site.requests_certificate);
  pipeline::Inputs in;
  in.site = &site;
  in.policy = &site.policy_for(path);
  in.tls = &e->tls;
  in.store = &store;
  in.detail = detail;
  in.offer_mapped_user_password = true;
  e->state.emplace(in);
  pipeline::run_to_decision(*e->state, password, &e->trace);
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
  if (!e.trace.directory_answer) return;
  const auth::DirectoryAnswer& d = *e.trace.directory_answer;
  for (const auto& tier : e.trace.directory_plan) {
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

void print_mapping_trace(const runtime::SiteRuntime& site, Evaluation& e) {
  const auth::CertFacts& facts = e.tls.leaf_facts();
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

// On-demand bindings (docs/on-demand.md): how each kind of client would be asked at this path.
void explain_on_demand(const runtime::SiteRuntime& site, const auth::LocationPolicy& policy, const std::string& client) {
  std::vector<std::string> on_demand;
  for (const auto& b : site.cfg.bindings)
    if (b.on_demand) on_demand.push_back(b.listen);
  if (on_demand.empty()) return;
  std::cout << fmt::format("on-demand bindings: {}\n", fmt::join(on_demand, " "));
  if (!policy.ssl_flags.negotiates()) {
    std::cout << "certificate request: none on those bindings (this location does not negotiate a certificate)\n";
    return;
  }
  const auto& su = site.cfg.step_up;
  const std::string step_up =
      su.enabled ? fmt::format("step-up: 303 (401 with Location for other methods) to {}.certgate/step-up, then "
                               "cookie {} for {} s", su.url, su.cookie_name, su.lifetime_seconds)
                 : "403.7: this client cannot be asked for a certificate after the handshake ([sites.step_up] is "
                   "not configured)";
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"tls13-pha", "TLS 1.3 post-handshake authentication (the body is read ahead first, up to " +
                        std::to_string(site.cfg.upload_read_ahead_bytes) + " bytes; larger: 413.0)"},
      {"tls12", "TLS 1.2 server-initiated secure renegotiation (the body is read ahead first, up to " +
                    std::to_string(site.cfg.upload_read_ahead_bytes) + " bytes; larger: 413.0)"},
      {"tls13", step_up + " (TLS 1.3 without post-handshake authentication: browsers)"},
      {"tls12-legacy", step_up + " (TLS 1.2 without secure renegotiation, RFC 5746)"},
      {"h2", (su.enabled ? step_up
                         : std::string("RST_STREAM HTTP_1_1_REQUIRED: the client retries over HTTP/1.1, where one of the "
                                       "above applies ([sites.step_up] is not configured)")) +
                 " (HTTP/2 cannot renegotiate or use post-handshake authentication)"}};
  for (const auto& [kind, how] : kinds)
    if (client.empty() || client == kind) std::cout << fmt::format("certificate request ({}): {}\n", kind, how);
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
  explain_on_demand(*site, policy, a.client);
  if (const std::string seg = hidden_in(*site, *path); !seg.empty()) {
    std::cout << fmt::format("verdict: 404.8 Not Found: the path contains the hidden segment '{}' "
                             "(request filtering: hidden_segments / allow_dot_segments)\n", seg);
    std::cout << "decided by: request filtering, before any certificate is looked at\n";
    return kRejected;
  }
  revocation::Store store(revocation::store_settings(snap->cfg.server));
  auto evaluation = evaluate(*site, *path, certs, pki::Detail::Full, store, a.password);
  Evaluation& e = *evaluation;
  const auth::ChainReport& report = e.report();
  std::cout << "certificate: " << pki::subject_text(certs[0].get()) << "\n";
  if (!policy.ssl_flags.negotiates()) {
    std::cout << "validation: not done (this location does not ask for a certificate)\n";
  } else if (report.fault == auth::ChainFault::None) {
    std::cout << "validation: OK\n";
  } else {
    std::cout << "validation: FAILED: " << report.reason << "\n";
  }
  for (std::size_t i = 0; i < report.elements.size(); ++i) {
    const auto& el = report.elements[i];
    std::cout << fmt::format("  [{}] {} (valid {} .. {}; revocation: {})\n", i, el.subject,
                             pki::utc_text(el.not_before), pki::utc_text(el.not_after), el.revocation);
  }
  if (policy.ssl_flags.negotiates() && report.fault == auth::ChainFault::None)
    print_mapping_trace(*site, e);
  const auth::Outcome& o = e.outcome();
  if (!o.user.empty() || o.allowed())
    std::cout << fmt::format("user: {} ({}{})\n", o.user.empty() ? "anonymous" : "\"" + o.user + "\"",
                             o.auth_method.empty() ? "-" : o.auth_method,
                             o.rule.empty() ? "" : ", by " + o.rule);
  const auto& acc = policy.access;
  if (!acc.empty())
    std::cout << fmt::format("authorization: allow users {}, deny users {}, allow groups {}, deny groups {}\n",
                             quoted_list(acc.allow_users), quoted_list(acc.deny_users),
                             quoted_list(acc.allow_groups), quoted_list(acc.deny_groups));
  if (e.state->password_asked())
    std::cout << "note: this location also asks for the password of \"" << e.state->evidence().basic_user
              << (e.trace.password_assumed ? "\" (Basic); the verdict assumes the right one is given "
                                             "(--password checks one)\n"
                                           : "\" (Basic); the verdict checks the one given with --password\n");
  std::cout << fmt::format("verdict: {} {}{}\n", code(o), o.allowed() ? "OK" : o.row().title,
                           o.reason.empty() ? "" : ": " + o.reason);
  // As the server logs the request (sc-status, sc-substatus, sc-win32-status, cs-username) when
  // it answers with a file or an error page.
  const auto& row = o.row();
  std::cout << fmt::format("logged as: status {} substatus {} win32 {} user {}\n", row.status, row.substatus,
                           row.win32, o.user.empty() ? "-" : o.user);
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
  revocation::Store store(revocation::store_settings(now->cfg.server));
  std::size_t checked = 0, changed = 0;
  for (const auto& f : files) {
    auto certs = pki::parse_certificates(pki::read_file(f));
    if (certs.empty()) continue;  // keys and other PEM files in the folder
    ++checked;
    auto show = [&](const runtime::SiteRuntime& site, const std::string& hidden) -> std::string {
      if (!hidden.empty()) return "404.8 -";
      const auth::Outcome o = evaluate(site, *path, certs, pki::Detail::Brief, store, std::nullopt)->outcome();
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

// The password's first line, from a file or standard input: a command line is readable by every
// local user (ps, /proc/PID/cmdline) and kept in shell histories.
std::optional<std::string> read_password_file(const std::string& file) {
  std::string line;
  if (file == "-") {
    if (!std::getline(std::cin, line)) return std::nullopt;
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in || !std::getline(in, line)) return std::nullopt;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

int explain(const ExplainArgs& a) {
  if (a.password_file.empty()) return a.compare_with.empty() ? explain_one(a) : compare(a);
  ExplainArgs with = a;
  with.password = read_password_file(a.password_file);
  if (!with.password) {
    std::cerr << "certgate explain: cannot read a password from --password-file " << a.password_file << "\n";
    return kUsage;
  }
  const int rc = with.compare_with.empty() ? explain_one(with) : compare(with);
  OPENSSL_cleanse(with.password->data(), with.password->size());
  return rc;
}

}  // namespace certgate::cli
