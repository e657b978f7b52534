// `certgate map add/list/remove`: edit a site's one-to-one list in the TOML file without
// touching anything else (comments and order stay), refuse duplicates, check the result the
// way `serve` would, and replace the file atomically.
#include "auth/directory.hpp"
#include "auth/mapping.hpp"
#include "cli/commands.hpp"
#include "cli/file_edit.hpp"
#include "pki/cert_facts.hpp"
#include "pki/load.hpp"
#include "runtime/snapshot.hpp"

#include <openssl/pem.h>

#include <fmt/format.h>

#include <iostream>
#include <regex>

namespace certgate::cli {
namespace {

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    lines.push_back(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    pos = nl == std::string::npos ? text.size() : nl + 1;
  }
  return lines;
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// The table name of a header line ("sites.mapping.one_to_one"), or "" for other lines.
std::string header_name(const std::string& line) {
  static const std::regex re(R"(^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(#.*)?\r?$)");
  std::smatch m;
  return std::regex_match(line, m, re) ? m[1].str() : "";
}

// Lines [first, end) of a site, 0-based: from its [[sites]] header to the next header that
// does not belong to it.
std::pair<std::size_t, std::size_t> site_region(const std::vector<std::string>& lines, int header_line) {
  std::size_t first = static_cast<std::size_t>(header_line - 1);
  std::size_t end = first + 1;
  for (; end < lines.size(); ++end) {
    std::string h = header_name(lines[end]);
    if (!h.empty() && h.rfind("sites.", 0) != 0) break;
  }
  while (end > first + 1 && lines[end - 1].find_first_not_of(" \t\r") == std::string::npos) --end;
  return {first, end};
}

// Checks a candidate text exactly as `serve` would, from the same folder (relative paths).
std::string check_candidate(const std::filesystem::path& file, const std::string& text) {
  const std::filesystem::path probe = file.parent_path() / ("." + file.filename().string() + ".check.toml");
  try {
    write_text_atomically(probe, text, 0600);
    runtime::compile(config::load(probe), 1);
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove(probe, ec);
    std::string msg = e.what();
    const std::string probe_name = probe.filename().string();
    for (auto at = msg.find(probe_name); at != std::string::npos; at = msg.find(probe_name))
      msg.replace(at, probe_name.size(), file.filename().string());
    return msg;
  }
  std::error_code ec;
  std::filesystem::remove(probe, ec);
  return "";
}

std::string base64_der(X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  std::string out(static_cast<std::size_t>(4 * ((len + 2) / 3)) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), der, len);
  OPENSSL_free(der);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Checks the edited text as `serve` would, then replaces the file; `verb` names the edit.
int commit_edit(const MapArgs& a, const std::vector<std::string>& lines, const char* verb) {
  const std::string text = join(lines);
  if (std::string err = check_candidate(a.config_file, text); !err.empty()) {
    std::cerr << "certgate map: not " << verb << ": " << err << "\n";
    return kRejected;
  }
  try {
    write_text_atomically(a.config_file, text, 0644);
  } catch (const std::exception& e) {
    std::cerr << "certgate map: " << e.what() << "\n";
    return kUsage;
  }
  return kOk;
}

struct Loaded {
  std::shared_ptr<const runtime::Snapshot> snap;
  const runtime::SiteRuntime* site = nullptr;
  std::vector<std::string> lines;
};

bool load(const MapArgs& a, Loaded& out) {
  try {
    out.snap = runtime::compile(config::load(a.config_file), 1);
    out.lines = split_lines(read_text(a.config_file));
  } catch (const std::exception& e) {
    std::cerr << "certgate map: " << e.what() << "\n";
    return false;
  }
  for (const auto& s : out.snap->sites)
    if (s.cfg.name == a.site) out.site = &s;
  if (!out.site) std::cerr << "certgate map: no site named \"" << a.site << "\" in " << a.config_file << "\n";
  return out.site != nullptr;
}

int add(const MapArgs& a) {
  Loaded l;
  if (!load(a, l)) return kUsage;
  std::vector<pki::X509Ptr> certs;
  try {
    certs = pki::load_certificates(a.cert);
  } catch (const pki::LoadError& e) {
    std::cerr << "certgate map: " << e.what() << "\n";
    return kUsage;
  }
  X509* leaf = certs.front().get();
  static const std::vector<std::pair<std::string, auth::OneToOneKey>> kinds{
      {"certificate", auth::OneToOneKey::Certificate}, {"public-key", auth::OneToOneKey::PublicKey},
      {"issuer-serial", auth::OneToOneKey::IssuerSerial}, {"ski", auth::OneToOneKey::Ski},
      {"upn", auth::OneToOneKey::Upn}, {"email", auth::OneToOneKey::Email}};
  auto kind = std::find_if(kinds.begin(), kinds.end(), [&](const auto& k) { return k.first == a.match; });
  if (kind == kinds.end()) {
    std::cerr << "certgate map: --match must be certificate, public-key, issuer-serial, ski, upn or email\n";
    return kUsage;
  }
  auth::CertFacts facts = pki::cert_facts(leaf);
  std::vector<std::string> block{"", "  [[sites.mapping.one_to_one]]", "  user = " + toml_string(a.user)};
  if (kind->second == auth::OneToOneKey::Certificate) {
    block.push_back("  # " + facts.subject_dn + " (SHA-1 " + facts.sha1_thumbprint + ")");
    block.push_back("  certificate = " + toml_string(base64_der(leaf)));
  } else {
    std::string value;
    switch (kind->second) {
      case auth::OneToOneKey::PublicKey: value = facts.spki_sha256; break;
      case auth::OneToOneKey::IssuerSerial: value = facts.serial_hex + ";" + facts.issuer_dn; break;
      case auth::OneToOneKey::Ski: value = facts.ski_hex; break;
      case auth::OneToOneKey::Upn: value = facts.upns.empty() ? "" : facts.upns.front(); break;
      case auth::OneToOneKey::Email: value = facts.emails.empty() ? "" : facts.emails.front(); break;
      default: break;
    }
    if (value.empty()) {
      std::cerr << "certgate map: the certificate has no " << a.match << " to match on\n";
      return kRejected;
    }
    block.push_back("  # " + facts.subject_dn);
    block.push_back("  match = " + toml_string(a.match));
    block.push_back("  value = " + toml_string(value));
  }
  const std::size_t end = site_region(l.lines, l.site->cfg.line).second;
  std::vector<std::string> lines = l.lines;
  lines.insert(lines.begin() + static_cast<long>(end), block.begin(), block.end());
  if (int rc = commit_edit(a, lines, "added"); rc != kOk) return rc;
  std::cout << fmt::format("added: {} -> user \"{}\" (match = {}) in site \"{}\"\n", facts.subject_dn,
                           a.user, a.match, a.site);
  return kOk;
}

int list(const MapArgs& a) {
  Loaded l;
  if (!load(a, l)) return kUsage;
  const auth::SiteAuth& s = l.site->auth;
  std::cout << fmt::format("site \"{}\": mapping {}, one-to-one {}, many-to-one {}\n", a.site,
                           s.mapping_enabled ? "enabled" : "disabled",
                           s.one_to_one_enabled ? "enabled" : "disabled",
                           s.many_to_one_enabled ? "enabled" : "disabled");
  for (const auto& e : s.one_to_one.entries())
    std::cout << fmt::format("one-to-one  {:<20} {:<13} {}{}  ({})\n", e.user, auth::to_string(e.key),
                             e.value.size() > 40 ? e.value.substr(0, 40) + "…" : e.value,
                             e.enabled ? "" : " [disabled]", e.origin);
  for (const auto& m : s.many_to_one.mappings())
    std::cout << fmt::format("many-to-one \"{}\" {} {} ({} rules){}  ({})\n", m.name, m.allow ? "allow" : "deny",
                             m.user.empty() ? "-" : m.user, m.rules.size(), m.enabled ? "" : " [disabled]", m.origin);
  return kOk;
}

int remove(const MapArgs& a) {
  Loaded l;
  if (!load(a, l)) return kUsage;
  std::optional<auth::CertFacts> facts;
  if (!a.cert.empty()) {
    try {
      facts = pki::cert_facts(pki::load_certificates(a.cert).front().get());
    } catch (const pki::LoadError& e) {
      std::cerr << "certgate map: " << e.what() << "\n";
      return kUsage;
    }
  }
  const auto& cfg_entries = l.site->cfg.mapping.one_to_one;
  const auto& compiled = l.site->auth.one_to_one.entries();
  std::vector<int> headers;  // 1-based header lines of the entries to remove
  for (std::size_t i = 0; i < cfg_entries.size() && i < compiled.size(); ++i) {
    bool hit = !a.user.empty() && auth::fold(compiled[i].user) == auth::fold(a.user);
    if (facts) {
      auto values = auth::one_to_one_values(compiled[i].key, *facts);
      hit = hit || std::find(values.begin(), values.end(), compiled[i].value) != values.end();
    }
    if (hit) headers.push_back(cfg_entries[i].line);
  }
  if (headers.empty()) {
    std::cerr << "certgate map: no one-to-one entry of site \"" << a.site << "\" matches\n";
    return kRejected;
  }
  std::vector<std::string> lines = l.lines;
  std::sort(headers.rbegin(), headers.rend());  // bottom up: earlier line numbers stay valid
  for (int h : headers) {
    std::size_t first = static_cast<std::size_t>(h - 1), end = first + 1;
    while (end < lines.size() && header_name(lines[end]).empty()) ++end;
    while (end > first + 1 && lines[end - 1].find_first_not_of(" \t\r") == std::string::npos) --end;
    // the comment lines written right under the header belong to the entry; blank line above too
    if (first > 0 && lines[first - 1].find_first_not_of(" \t\r") == std::string::npos) --first;
    lines.erase(lines.begin() + static_cast<long>(first), lines.begin() + static_cast<long>(end));
  }
  if (int rc = commit_edit(a, lines, "removed"); rc != kOk) return rc;
  std::cout << "removed " << headers.size() << " one-to-one entr" << (headers.size() == 1 ? "y" : "ies")
            << " from site \"" << a.site << "\"\n";
  return kOk;
}

// What an administrator pastes into the account's altSecurityIdentities (behaviour.md §3).
int ad_string(const MapArgs& a) {
  std::vector<pki::X509Ptr> certs;
  try {
    certs = pki::load_certificates(a.cert);
  } catch (const pki::LoadError& e) {
    std::cerr << "certgate map ad-string: " << e.what() << "\n";
    return kUsage;
  }
  const auth::CertFacts f = pki::cert_facts(certs.front().get());
  std::cout << "# certificate: " << f.subject_dn << "\n# issuer:      " << f.issuer_dn << "\n";
  std::cout << "# strong mappings (accepted by default):\n";
  const auto ids = auth::alt_security_identities(f);
  for (const auto& c : ids)
    if (auth::is_strong(c.form)) std::cout << c.value << "\n";
  std::cout << "# weak mappings (accepted only with allow_weak = true):\n";
  for (const auto& c : ids)
    if (!auth::is_strong(c.form)) std::cout << c.value << "\n";
  for (const auto& upn : f.upns)
    std::cout << "# implicit (weak): an account whose userPrincipalName is " << upn << "\n";
  for (const auto& sid : f.sids)
    std::cout << "# the certificate names SID " << sid << ": an account with that objectSid matches (strong)\n";
  return kOk;
}

}  // namespace

int map(const MapArgs& a) {
  if (a.action == "ad-string") return ad_string(a);
  if (a.action == "add") return add(a);
  if (a.action == "remove") return remove(a);
  return list(a);
}

}  // namespace certgate::cli
