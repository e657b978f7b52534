#include "iis/import.hpp"

#include <pugixml.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>

namespace certgate::iis {
namespace {

// ---------------------------------------------------------------------------------------------
// What one <system.webServer> section says. Unset fields inherit, as IIS configuration does.

struct Rule {
  std::string field, subfield, match;
  bool case_sensitive = true;
};
struct ManyToOne {
  std::string name, description, user;
  bool allow = true, enabled = true;
  std::vector<Rule> rules;
};
struct OneToOne {
  std::string user, certificate;
  bool enabled = true;
  std::string password_note;
};
struct AuthzRule {
  bool allow = true;
  std::vector<std::string> users, roles;
};

struct Scope {
  std::optional<std::vector<std::string>> ssl_flags;
  std::optional<bool> anonymous, basic;
  std::optional<std::string> realm;
  std::optional<bool> mapping, one_to_one_enabled, many_to_one_enabled, ad_mapping;
  std::vector<OneToOne> one_to_one;
  std::vector<ManyToOne> many_to_one;
  bool mappings_cleared = false;
  bool has_authz = false, authz_cleared = false;
  std::vector<AuthzRule> authz;
  std::optional<std::vector<std::string>> default_documents;
  std::optional<std::string> upload_read_ahead;  // serverRuntime uploadReadAheadSize (bytes)
  // <requestFiltering><hiddenSegments> as written: ('c', "") clear, ('+', s) add, ('-', s) remove;
  // applied in order, parent scopes first, to IIS's default list.
  std::vector<std::pair<char, std::string>> hidden_ops;
  // <httpErrors> <error responseMode="File">: "403.16" or "404" → the file as IIS names it
  // (prefixLanguageFilePath\en-US\path, or path); a later scope's entry replaces an earlier one.
  std::vector<std::pair<std::string, std::string>> error_pages;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t\r\n");
  auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep))
    if (auto t = trim(cur); !t.empty()) out.push_back(t);
  return out;
}

bool attr_bool(const pugi::xml_node& n, const char* name, bool def) {
  auto a = n.attribute(name);
  if (!a) return def;
  return lower(a.value()) == "true";
}

std::optional<bool> attr_opt_bool(const pugi::xml_node& n, const char* name) {
  auto a = n.attribute(name);
  if (!a) return std::nullopt;
  return lower(a.value()) == "true";
}

bool encrypted(const std::string& v) { return v.rfind("[enc:", 0) == 0; }

class Reader {
 public:
  explicit Reader(Report& report) : report_(report) {}

  // Reads a <system.webServer> element found at `where` ("applicationHost.config: location
  // 'Default Web Site/secure'") into `s`.
  void read(const pugi::xml_node& web, const std::string& where, Scope& s) {
    for (auto child : web.children()) {
      std::string name = child.name();
      if (child.type() != pugi::node_element) continue;
      if (name == "security") read_security(child, where, s);
      else if (name == "defaultDocument") read_default_document(child, where, s);
      else if (name == "serverRuntime") {
        const std::string v = child.attribute("uploadReadAheadSize").value();
        if (!v.empty() && v.size() <= 8 && std::all_of(v.begin(), v.end(), ::isdigit)) {
          s.upload_read_ahead = v;
          report_.imported.push_back(where + ": serverRuntime uploadReadAheadSize=" + v +
                                     " as upload_read_ahead_bytes (the body read before an on-demand "
                                     "certificate request; site-wide in certgate)");
        } else {
          ignore(where, child, "no setting certgate uses");
        }
      } else if (name == "httpErrors") {
        read_http_errors(child, where, s);
      } else {
        ignore(where, child, "not a certgate feature");
      }
    }
  }

 private:
  void ignore(const std::string& where, const pugi::xml_node& n, const std::string& why) {
    report_.ignored.push_back(where + ": <" + std::string(n.name()) + ">: " + why);
  }

  // IIS <httpErrors>: File entries become [sites.error_pages]; ExecuteURL and Redirect run or
  // send elsewhere, which certgate does not do. The defaults' own responseMode applies to
  // entries that name none.
  void read_http_errors(const pugi::xml_node& errors, const std::string& where, Scope& s) {
    if (!errors.child("error") && !errors.child("remove") && !errors.child("clear"))
      ignore(where, errors, "no <error> entries (certgate writes its own pages; detailed_errors decides their detail)");
    const std::string default_mode = errors.attribute("defaultResponseMode") ? errors.attribute("defaultResponseMode").value() : "File";
    // certgate shows its own detailed page where IIS's DetailedLocalOnly would (detailed_errors).
    if (auto mode = std::string(errors.attribute("errorMode").value()); mode == "Custom" || mode == "Detailed")
      report_.differences.push_back(where + ": <httpErrors errorMode=\"" + mode + "\">: certgate shows custom pages to the "
                                    "clients detailed_errors gives no detail (IIS's DetailedLocalOnly); set [server] "
                                    "detailed_errors = \"" + (mode == "Custom" ? "never" : "always") + "\" for the same");
    for (auto e : errors.children()) {
      if (e.type() != pugi::node_element) continue;
      const std::string tag = e.name();
      if (tag == "clear") {
        s.error_pages.clear();
        continue;
      }
      const std::string status = e.attribute("statusCode").value();
      const std::string sub = e.attribute("subStatusCode").value();
      const std::string key = sub.empty() || sub == "-1" ? status : status + "." + sub;
      const auto valid = [](const std::string& v) {
        return !v.empty() && v.size() <= 3 && std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); });
      };
      if (!valid(status) || !(sub.empty() || sub == "-1" || valid(sub)) || std::stoi(status) < 400 || std::stoi(status) > 599 ||
          (!sub.empty() && sub != "-1" && std::stoi(sub) > 99)) {
        report_.ignored.push_back(where + ": <httpErrors> <" + tag + " statusCode=\"" + status + "\" subStatusCode=\"" + sub +
                                  "\">: not a status certgate answers with");
        continue;
      }
      std::erase_if(s.error_pages, [&](const auto& p) { return p.first == key; });
      if (tag == "remove") continue;
      if (tag != "error") {
        ignore(where, e, "not part of <httpErrors>");
        continue;
      }
      const std::string mode = e.attribute("responseMode") ? e.attribute("responseMode").value() : default_mode;
      std::string path = e.attribute("path").value();
      if (mode != "File" || path.empty()) {
        report_.ignored.push_back(where + ": custom error page for " + key + " (" + mode + " " + path +
                                  "): certgate serves error pages from files only (responseMode=\"File\")");
        continue;
      }
      const std::string prefix = e.attribute("prefixLanguageFilePath").value();
      if (!prefix.empty()) path = prefix + "\\en-US\\" + path;
      // No file name holds one; printed as is, a line break would forge lines of this report.
      if (std::any_of(path.begin(), path.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
        report_.ignored.push_back(where + ": custom error page for " + key + ": its path holds control characters");
        continue;
      }
      s.error_pages.emplace_back(key, path);
      report_.imported.push_back(where + ": custom error page for " + key + " (" + path + ")");
    }
  }

  void read_security(const pugi::xml_node& sec, const std::string& where, Scope& s) {
    for (auto child : sec.children()) {
      if (child.type() != pugi::node_element) continue;
      std::string name = child.name();
      if (name == "access") {
        if (auto a = child.attribute("sslFlags")) {
          s.ssl_flags = ssl_flag_words(a.value());
          report_.imported.push_back(where + ": access sslFlags=\"" + a.value() + "\"");
          if (std::string(a.value()).find("SslMapCert") != std::string::npos || (std::atoi(a.value()) & 128))
            report_.differences.push_back(where + ": SslMapCert has no separate meaning in certgate: mapping runs when [sites.mapping] is enabled");
        }
      } else if (name == "authentication") {
        read_authentication(child, where, s);
      } else if (name == "authorization") {
        s.has_authz = true;
        for (auto r : child.children()) {
          std::string rn = r.name();
          if (rn == "clear") {
            s.authz.clear();
            s.authz_cleared = true;
          } else if (rn == "remove") {
            // <remove users="*" roles="" verbs=""/> drops an inherited rule with these values
            s.authz.push_back(AuthzRule{false, {"<remove>" + std::string(r.attribute("users").value())}, {}});
          } else if (rn == "add") {
            AuthzRule rule;
            rule.allow = lower(r.attribute("accessType").value()) != "deny";
            rule.users = split(r.attribute("users").value(), ',');
            rule.roles = split(r.attribute("roles").value(), ',');
            if (r.attribute("verbs") && *r.attribute("verbs").value())
              report_.differences.push_back(where + ": authorization rule for verbs \"" +
                                            std::string(r.attribute("verbs").value()) +
                                            "\" applies to every method in certgate");
            s.authz.push_back(rule);
          }
        }
        report_.imported.push_back(where + ": authorization rules");
      } else if (name == "requestFiltering") {
        read_request_filtering(child, where, s);
      } else if (name == "ipSecurity" || name == "dynamicIpSecurity") {
        ignore(where, child, "not a certgate feature (request limits are [server] max_* keys)");
      } else {
        ignore(where, child, "not a certgate feature");
      }
    }
  }

  void read_request_filtering(const pugi::xml_node& rf, const std::string& where, Scope& s) {
    for (auto child : rf.children()) {
      if (child.type() != pugi::node_element) continue;
      if (std::string(child.name()) != "hiddenSegments") {
        ignore(where, child, "requestFiltering: not a certgate feature (request limits are [server] max_* keys)");
        continue;
      }
      if (child.attribute("applyToWebDAV"))
        report_.ignored.push_back(where + ": hiddenSegments applyToWebDAV: certgate serves no WebDAV");
      int n = 0;
      for (auto e : child.children()) {
        std::string en = e.name();
        std::string seg = trim(e.attribute("segment").value());
        if (en == "clear") s.hidden_ops.emplace_back('c', "");
        else if ((en == "add" || en == "remove") && !seg.empty()) s.hidden_ops.emplace_back(en == "add" ? '+' : '-', seg);
        else continue;
        ++n;
      }
      report_.imported.push_back(where + ": requestFiltering hiddenSegments (" + std::to_string(n) + " entries)");
    }
  }

  void read_authentication(const pugi::xml_node& auth, const std::string& where, Scope& s) {
    for (auto m : auth.children()) {
      if (m.type() != pugi::node_element) continue;
      std::string name = m.name();
      if (name == "anonymousAuthentication") {
        s.anonymous = attr_opt_bool(m, "enabled");
        if (s.anonymous) report_.imported.push_back(where + ": anonymousAuthentication enabled=" + (*s.anonymous ? "true" : "false"));
      } else if (name == "basicAuthentication") {
        s.basic = attr_opt_bool(m, "enabled");
        if (auto r = m.attribute("realm"); r && *r.value()) s.realm = r.value();
        if (s.basic) report_.imported.push_back(where + ": basicAuthentication enabled=" + (*s.basic ? "true" : "false"));
        if (s.basic.value_or(false))
          report_.differences.push_back(where + ": Basic authentication checked Windows accounts; certgate checks a users file: create it with `certgate users add -f users.htpasswd USER`");
      } else if (name == "iisClientCertificateMappingAuthentication") {
        read_mapping(m, where, s);
      } else if (name == "clientCertificateMappingAuthentication") {
        s.ad_mapping = attr_opt_bool(m, "enabled");
        if (s.ad_mapping.value_or(false))
          report_.differences.push_back(where + ": clientCertificateMappingAuthentication (Active Directory mapping) is enabled: add [sites.directory_mapping] with your domain controllers, base DN and service account (docs/directory.md); IIS keeps those in Windows, not in this file");
      } else if (name == "windowsAuthentication" || name == "digestAuthentication") {
        if (attr_bool(m, "enabled", false))
          report_.ignored.push_back(where + ": " + name + " is enabled: not available in certgate");
      } else {
        ignore(where, m, "not a certgate feature");
      }
    }
  }

  void read_mapping(const pugi::xml_node& m, const std::string& where, Scope& s) {
    s.mapping = attr_opt_bool(m, "enabled");
    s.one_to_one_enabled = attr_opt_bool(m, "oneToOneCertificateMappingsEnabled");
    s.many_to_one_enabled = attr_opt_bool(m, "manyToOneCertificateMappingsEnabled");
    if (attr_opt_bool(m, "defaultLogonDomain") || m.attribute("logonMethod"))
      report_.differences.push_back(where + ": logonMethod/defaultLogonDomain: certgate does not log on to Windows; the mapped user name is what it forwards and logs");
    int i = 0;
    for (auto e : m.child("oneToOneMappings").children()) {
      std::string en = e.name();
      if (en == "clear") { s.one_to_one.clear(); s.mappings_cleared = true; continue; }
      if (en != "add") continue;
      OneToOne o;
      o.user = e.attribute("userName").value();
      o.enabled = attr_bool(e, "enabled", true);
      std::string cert = e.attribute("certificate").value();
      cert.erase(std::remove_if(cert.begin(), cert.end(), [](unsigned char c) { return std::isspace(c); }), cert.end());
      o.certificate = cert;
      std::string pw = e.attribute("password").value();
      const std::string label = where + ": one-to-one mapping #" + std::to_string(++i) + " (" + o.user + ")";
      if (o.user.empty() || cert.empty()) {
        report_.ignored.push_back(label + ": no userName or no certificate");
        continue;
      }
      if (encrypted(pw)) {
        o.password_note = "IIS keeps this account's password encrypted (" + pw.substr(0, pw.find(':', 5)) + ":...); it cannot be decrypted here";
        report_.differences.push_back(label + ": password is encrypted and cannot be decrypted; certgate does not need it to map (placeholder comment left)");
      } else if (!pw.empty()) {
        o.password_note = "IIS had a clear-text password for this account; it was not copied";
        report_.differences.push_back(label + ": clear-text password not copied");
      }
      report_.imported.push_back(label);
      s.one_to_one.push_back(std::move(o));
    }
    for (auto e : m.child("manyToOneMappings").children()) {
      std::string en = e.name();
      if (en == "clear") { s.many_to_one.clear(); continue; }
      if (en != "add") continue;
      ManyToOne mm;
      mm.name = e.attribute("name").value();
      mm.description = e.attribute("description").value();
      mm.user = e.attribute("userName").value();
      mm.enabled = attr_bool(e, "enabled", true);
      mm.allow = lower(e.attribute("permissionMode").value()) != "deny";
      for (auto r : e.child("rules").children("add"))
        mm.rules.push_back({r.attribute("certificateField").value(), r.attribute("certificateSubField").value(),
                            r.attribute("matchCriteria").value(), attr_bool(r, "compareCaseSensitive", true)});
      const std::string label = where + ": many-to-one mapping \"" + mm.name + "\"";
      if (encrypted(e.attribute("password").value()))
        report_.differences.push_back(label + ": password is encrypted and cannot be decrypted; certgate does not need it to map");
      report_.imported.push_back(label + " (" + std::to_string(mm.rules.size()) + " rules)");
      s.many_to_one.push_back(std::move(mm));
    }
  }

  void read_default_document(const pugi::xml_node& d, const std::string& where, Scope& s) {
    std::vector<std::string> docs = s.default_documents.value_or(std::vector<std::string>{});
    for (auto f : d.child("files").children()) {
      std::string fn = f.name();
      if (fn == "clear") docs.clear();
      else if (fn == "add") docs.push_back(f.attribute("value").value());
      else if (fn == "remove") docs.erase(std::remove(docs.begin(), docs.end(), f.attribute("value").value()), docs.end());
    }
    if (attr_opt_bool(d, "enabled") == false) docs.clear();
    s.default_documents = docs;
    report_.imported.push_back(where + ": defaultDocument");
  }

  Report& report_;
};

// Child settings over parent settings; collections add up unless the child cleared them.
Scope merge(const Scope& parent, const Scope& child) {
  Scope out = parent;
  auto take = [](auto& dst, const auto& src) { if (src) dst = src; };
  take(out.ssl_flags, child.ssl_flags);
  take(out.upload_read_ahead, child.upload_read_ahead);
  take(out.anonymous, child.anonymous);
  take(out.basic, child.basic);
  take(out.realm, child.realm);
  take(out.mapping, child.mapping);
  take(out.one_to_one_enabled, child.one_to_one_enabled);
  take(out.many_to_one_enabled, child.many_to_one_enabled);
  take(out.ad_mapping, child.ad_mapping);
  take(out.default_documents, child.default_documents);
  out.hidden_ops.insert(out.hidden_ops.end(), child.hidden_ops.begin(), child.hidden_ops.end());
  for (const auto& page : child.error_pages) {
    std::erase_if(out.error_pages, [&](const auto& p) { return p.first == page.first; });
    out.error_pages.push_back(page);
  }
  if (child.mappings_cleared) out.one_to_one.clear();
  out.one_to_one.insert(out.one_to_one.end(), child.one_to_one.begin(), child.one_to_one.end());
  out.many_to_one.insert(out.many_to_one.end(), child.many_to_one.begin(), child.many_to_one.end());
  if (child.has_authz) {
    out.has_authz = true;
    if (child.authz_cleared) out.authz.clear();
    for (const auto& r : child.authz) {
      if (!r.users.empty() && r.users[0].rfind("<remove>", 0) == 0) {
        std::string users = r.users[0].substr(8);
        out.authz.erase(std::remove_if(out.authz.begin(), out.authz.end(), [&](const AuthzRule& x) {
                          return x.users.size() == 1 && x.users[0] == users;
                        }), out.authz.end());
      } else {
        out.authz.push_back(r);
      }
    }
  }
  return out;
}

// IIS compares segments case-insensitively: so do add, remove and the duplicate check.
std::vector<std::string> hidden_segments(const std::vector<std::pair<char, std::string>>& ops) {
  std::vector<std::string> out{"web.config", "bin", "App_code", "App_GlobalResources", "App_LocalResources",
                               "App_WebReferences", "App_Data", "App_Browsers"};
  auto find = [&](const std::string& seg) {
    return std::find_if(out.begin(), out.end(), [&](const std::string& x) { return lower(x) == lower(seg); });
  };
  for (const auto& [op, seg] : ops) {
    if (op == 'c') out.clear();
    else if (op == '+' && find(seg) == out.end()) out.push_back(seg);
    else if (op == '-' && find(seg) != out.end()) out.erase(find(seg));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// TOML output.

std::string q(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
    else if (c < 0x20 || c == 0x7f) { char buf[8]; std::snprintf(buf, sizeof buf, "\\u%04x", c); out += buf; }
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

// Text inside a TOML comment: one line, no control characters (TOML refuses them there too).
std::string comment_text(std::string s) {
  for (auto& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return s;
}

std::string arr(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + q(v[i]);
  return out + "]";
}

// W3C fields in IIS's own order, from logExtFileFlags names.
std::vector<std::string> log_fields(const std::string& flags, Report& report, const std::string& where) {
  static const std::vector<std::pair<std::string, std::string>> kOrder{
      {"Date", "date"}, {"Time", "time"}, {"SiteName", "s-sitename"}, {"ComputerName", "s-computername"},
      {"ServerIP", "s-ip"}, {"Method", "cs-method"}, {"UriStem", "cs-uri-stem"}, {"UriQuery", "cs-uri-query"},
      {"ServerPort", "s-port"}, {"UserName", "cs-username"}, {"ClientIP", "c-ip"},
      {"ProtocolVersion", "cs-version"}, {"UserAgent", "cs(User-Agent)"}, {"Cookie", "cs(Cookie)"},
      {"Referer", "cs(Referer)"}, {"Host", "cs-host"}, {"HttpStatus", "sc-status"},
      {"HttpSubStatus", "sc-substatus"}, {"Win32Status", "sc-win32-status"}, {"BytesSent", "sc-bytes"},
      {"BytesRecv", "cs-bytes"}, {"TimeTaken", "time-taken"}};
  std::set<std::string> wanted;
  for (const auto& f : split(flags, ',')) wanted.insert(f);
  std::vector<std::string> out;
  for (const auto& [flag, field] : kOrder)
    if (wanted.erase(flag)) out.push_back(field);
  for (const auto& rest : wanted) report.ignored.push_back(where + ": log field " + rest + " has no certgate equivalent");
  return out;
}

}  // namespace

std::vector<std::string> ssl_flag_words(const std::string& v) {
  std::vector<std::string> out;
  bool numeric = !v.empty() && std::all_of(v.begin(), v.end(), ::isdigit);
  if (numeric) {
    int n = std::atoi(v.c_str());
    if (n & 8) out.push_back("Ssl");
    if (n & 32) out.push_back("SslNegotiateCert");
    if (n & 64) out.push_back("SslRequireCert");
    if (n & 256) out.push_back("Ssl128");
    return out;
  }
  for (const auto& w : split(v, ',')) {
    if (w == "None" || w == "SslMapCert") continue;
    out.push_back(w);
  }
  return out;
}

namespace {

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as TOML requires.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 4;
    if (n == 4 || i + n >= s.size()) return false;
    std::uint32_t cp = n == 0 ? c : c & (0x3f >> n);
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

std::string line_col(const std::string& text, std::ptrdiff_t offset) {
  std::size_t line = 1, col = 1;
  for (std::ptrdiff_t i = 0; i < offset && i < static_cast<std::ptrdiff_t>(text.size()); ++i) {
    if (text[static_cast<std::size_t>(i)] == '\n') ++line, col = 1;
    else ++col;
  }
  return std::to_string(line) + ":" + std::to_string(col);
}

pugi::xml_document load_xml(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ImportError(file.string() + ": cannot read");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  pugi::xml_document doc;
  pugi::xml_parse_result r = doc.load_buffer(text.data(), text.size());
  if (!r)
    throw ImportError(file.string() + ":" + line_col(text, r.offset) + ": malformed XML: " + r.description());
  // pugixml hands UTF-8 through unchecked; what is imported ends up in TOML, which refuses
  // invalid sequences: better to name the place here than to write a file that cannot load.
  struct Check : pugi::xml_tree_walker {
    pugi::xml_node bad;
    bool for_each(pugi::xml_node& n) override {
      bool ok = valid_utf8(n.name()) && valid_utf8(n.value());
      for (auto a : n.attributes()) ok = ok && valid_utf8(a.name()) && valid_utf8(a.value());
      if (!ok) bad = n;
      return ok;
    }
  } check;
  doc.traverse(check);
  if (check.bad) {
    const auto at = check.bad.offset_debug();
    throw ImportError(file.string() + ":" + (at >= 0 ? line_col(text, at) + ":" : std::string(" ")) +
                      " not valid UTF-8 (IIS configuration files are UTF-8 or UTF-16)");
  }
  return doc;
}

struct Binding {
  std::string protocol, information, listen, host;
  int ssl_flags = 0;
  std::string ip, port;
};

std::string map_path(const std::string& windows, const ImportOptions& o, bool& mapped) {
  std::string p = windows;
  for (const char* var : {"%SystemDrive%", "%systemdrive%", "%SYSTEMDRIVE%"})
    if (p.rfind(var, 0) == 0) p = "C:" + p.substr(std::string(var).size());
  std::replace(p.begin(), p.end(), '/', '\\');
  const std::pair<std::string, std::string>* best = nullptr;
  for (const auto& m : o.path_maps) {
    std::string from = m.first;
    std::replace(from.begin(), from.end(), '/', '\\');
    while (from.size() > 3 && from.back() == '\\') from.pop_back();
    if (lower(p).rfind(lower(from), 0) == 0 && (p.size() == from.size() || p[from.size()] == '\\'))
      if (!best || from.size() > best->first.size()) best = &m;
  }
  mapped = best != nullptr;
  if (!best) return p;
  std::string from = best->first;
  while (from.size() > 3 && (from.back() == '\\' || from.back() == '/')) from.pop_back();
  std::string rest = p.substr(from.size());
  std::replace(rest.begin(), rest.end(), '\\', '/');
  std::string to = best->second;
  while (to.size() > 1 && to.back() == '/') to.pop_back();
  return to + rest;
}

}  // namespace

ImportResult import_iis(const ImportOptions& o) {
  ImportResult result;
  Report& report = result.report;
  Reader reader(report);
  auto doc = load_xml(o.applicationhost);
  const std::string ah = o.applicationhost.filename().string();
  auto root = doc.child("configuration");
  if (!root) throw ImportError(o.applicationhost.string() + ": no <configuration> element: not an IIS configuration file");

  Scope global;
  if (auto web = root.child("system.webServer")) reader.read(web, ah + ": <system.webServer>", global);
  std::map<std::string, Scope> scopes;  // "Site" or "Site/path" (lower case) → own settings
  std::map<std::string, std::string> scope_names;
  auto add_scope = [&](const std::string& path, const pugi::xml_node& web, const std::string& where) {
    std::string key = path;
    std::replace(key.begin(), key.end(), '\\', '/');
    while (!key.empty() && key.back() == '/') key.pop_back();
    if (key.empty() || key == ".") {
      reader.read(web, where, global);
      return;
    }
    reader.read(web, where, scopes[lower(key)]);
    scope_names[lower(key)] = key;
  };
  for (auto loc : root.children("location")) {
    std::string path = loc.attribute("path").value();
    if (auto web = loc.child("system.webServer")) add_scope(path, web, ah + ": location '" + path + "'");
    for (auto other : loc.children())
      if (std::string(other.name()) != "system.webServer")
        report.ignored.push_back(ah + ": location '" + path + "': <" + other.name() + ">: not a certgate feature");
  }
  for (const auto& [scope, file] : o.web_configs) {
    auto wdoc = load_xml(file);
    if (auto web = wdoc.child("configuration").child("system.webServer"))
      add_scope(scope, web, file.filename().string() + " (" + scope + ")");
    else
      report.ignored.push_back(file.string() + ": no <system.webServer> section");
  }
  std::vector<NetshBinding> netsh;
  if (!o.netsh.empty()) {
    std::ifstream in(o.netsh, std::ios::binary);
    if (!in) throw ImportError(o.netsh.string() + ": cannot read");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // netsh writes UTF-16 when redirected from PowerShell: drop the zero bytes of ASCII text.
    if (text.size() > 1 && static_cast<unsigned char>(text[0]) == 0xFF && static_cast<unsigned char>(text[1]) == 0xFE)
      text.erase(std::remove(text.begin() + 2, text.end(), '\0'), text.end()), text.erase(0, 2);
    if (!valid_utf8(text))
      throw ImportError(o.netsh.string() + ": not valid UTF-8 (save netsh's output as UTF-8 or UTF-16)");
    netsh = parse_netsh(text);
    report.imported.push_back(o.netsh.filename().string() + ": " + std::to_string(netsh.size()) + " SSL binding(s)");
  }

  auto sites = root.child("system.applicationHost").child("sites");
  auto defaults_log = sites.child("siteDefaults").child("logFile");
  std::ostringstream t;
  t << "# Imported from IIS by `certgate import-iis` (" << comment_text(ah) << "). Review the report it printed:\n"
    << "# every setting that was ignored or behaves differently is listed there.\n\n"
    << "[server]\nlog_dir = \"logs\"\n";
  int site_count = 0;
  std::set<std::string> endpoint_protocol_seen;
  for (auto site : sites.children("site")) {
    const std::string name = site.attribute("name").value();
    if (!o.only_site.empty() && name != o.only_site) continue;
    ++site_count;
    const std::string where = ah + ": site '" + name + "'";
    Scope eff = merge(global, scopes[lower(name)]);
    // Locations below the site, shortest first; mapping sections there become site-wide.
    std::vector<std::string> sub;
    for (const auto& [key, s] : scopes)
      if (key.rfind(lower(name) + "/", 0) == 0) sub.push_back(key);
    std::sort(sub.begin(), sub.end(), [](const auto& a, const auto& b) { return a.size() < b.size(); });
    for (const auto& key : sub) {
      const Scope& s = scopes[key];
      if (!s.one_to_one.empty() || !s.many_to_one.empty() || s.mapping) {
        report.differences.push_back("location '" + scope_names[key] + "': certificate mappings apply to the whole site in certgate");
        Scope mapping_only;
        mapping_only.mapping = s.mapping.value_or(false) || eff.mapping.value_or(false) ? std::optional<bool>(true) : s.mapping;
        mapping_only.one_to_one_enabled = s.one_to_one_enabled;
        mapping_only.many_to_one_enabled = s.many_to_one_enabled;
        mapping_only.one_to_one = s.one_to_one;
        mapping_only.many_to_one = s.many_to_one;
        mapping_only.mappings_cleared = s.mappings_cleared;
        eff = merge(eff, mapping_only);
      }
      if (!s.error_pages.empty())
        report.differences.push_back("location '" + scope_names[key] + "': custom error pages apply to the whole site in "
                                     "certgate; those of this location were not imported");
      if (s.basic.value_or(false) && !eff.basic.value_or(false)) {
        eff.basic = true;
        report.differences.push_back("location '" + scope_names[key] + "': Basic authentication is enabled per site in certgate");
      }
    }

    t << "\n[[sites]]\nname = " << q(name) << "\n";
    if (auto id = site.attribute("id")) {
      // Written as a TOML integer, so only digits may pass (anything else would be TOML syntax).
      const std::string v = id.value();
      if (!v.empty() && v.size() <= 9 && std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); }) &&
          std::stol(v) >= 1)
        t << "id = " << std::stol(v) << "\n";
      else
        report.ignored.push_back(where + ": site id '" + v + "': not a number from 1 to 999999999; certgate numbers the site by its position");
    }
    std::string physical;
    for (auto app : site.children("application"))
      for (auto vd : app.children("virtualDirectory")) {
        std::string app_path = app.attribute("path").value(), vd_path = vd.attribute("path").value();
        if (app_path == "/" && vd_path == "/") physical = vd.attribute("physicalPath").value();
        else report.ignored.push_back(where + ": application '" + app_path + "' virtual directory '" + vd_path + "' (" +
                                      vd.attribute("physicalPath").value() + "): certgate serves one root folder per site");
      }
    bool mapped = false;
    std::string root_dir = physical.empty() ? "www" : map_path(physical, o, mapped);
    if (!physical.empty() && !mapped)
      report.differences.push_back(where + ": physical path " + physical + " has no --path-map; written as is");
    t << "root = " << q(root_dir) << "\n";
    if (eff.default_documents) t << "default_documents = " << arr(*eff.default_documents) << "\n";
    t << "ssl_flags = " << arr(eff.ssl_flags.value_or(std::vector<std::string>{})) << "\n";
    t << "anonymous = " << (eff.anonymous.value_or(true) ? "true" : "false") << "\n";
    if (eff.upload_read_ahead) t << "upload_read_ahead_bytes = " << *eff.upload_read_ahead << "\n";
    if (!eff.hidden_ops.empty()) t << "hidden_segments = " << arr(hidden_segments(eff.hidden_ops)) << "\n";

    bool negotiates = false;
    auto negotiating = [](const std::vector<std::string>& f) {
      return std::find(f.begin(), f.end(), "SslNegotiateCert") != f.end() ||
             std::find(f.begin(), f.end(), "SslRequireCert") != f.end();
    };
    negotiates = negotiating(eff.ssl_flags.value_or(std::vector<std::string>{}));
    for (const auto& key : sub)
      if (scopes[key].ssl_flags) negotiates |= negotiating(*scopes[key].ssl_flags);

    const NetshBinding* tls_settings = nullptr;
    for (auto b : site.child("bindings").children("binding")) {
      std::string protocol = b.attribute("protocol").value();
      std::string info = b.attribute("bindingInformation").value();
      if (protocol != "http" && protocol != "https") {
        report.ignored.push_back(where + ": " + protocol + " binding " + info + ": only http and https are served");
        continue;
      }
      auto last = info.rfind(':');
      auto mid = last == std::string::npos ? std::string::npos : info.rfind(':', last - 1);
      if (mid == std::string::npos) {
        report.ignored.push_back(where + ": binding '" + info + "': not ip:port:host");
        continue;
      }
      std::string ip = info.substr(0, mid), port = info.substr(mid + 1, last - mid - 1), host = lower(info.substr(last + 1));
      if (ip.empty()) ip = "*";
      std::string listen = (ip.find(':') != std::string::npos && ip.front() != '[' ? "[" + ip + "]" : ip) + ":" + port;
      std::string endpoint_key = listen + "|" + protocol;
      t << "\n  [[sites.bindings]]\n  listen = " << q(listen) << "\n";
      if (protocol == "http") t << "  protocol = \"http\"\n";
      if (!host.empty()) t << "  host = " << q(host) << "\n";
      int flags = std::atoi(b.attribute("sslFlags").value());
      if (flags & 2) report.differences.push_back(where + ": binding " + info + " uses the Central Certificate Store: give the certificate with --certificate");
      if (protocol == "https") {
        const NetshBinding* nb = nullptr;
        for (const auto& n : netsh) {
          std::string want = host.empty() ? (ip == "*" ? "0.0.0.0" : ip) + ":" + port : host + ":" + port;
          if (lower(n.endpoint) == lower(want)) nb = &n;
        }
        if (!tls_settings) tls_settings = nb;
        const ImportOptions::Certificate* cert = nullptr;
        for (const auto& c : o.certificates)
          if (c.binding == info || (c.binding == "*" && !cert)) cert = &c;
        if (cert) {
          t << "  certificate = " << q(cert->certificate) << "\n";
          if (!cert->key.empty()) t << "  key = " << q(cert->key) << "\n";
          report.imported.push_back(where + ": https binding " + info + " with certificate " + cert->certificate);
        } else {
          std::string thumb = nb && !nb->certificate_hash.empty() ? nb->certificate_hash : "unknown";
          t << "  # The server certificate lives in the Windows store" << (nb ? " (" + comment_text(nb->store) + ")" : "")
            << ". Export it with its key, e.g. in PowerShell:\n"
            << "  #   Export-PfxCertificate -Cert Cert:\\LocalMachine\\My\\" << comment_text(thumb) << " -FilePath server.pfx -Password (Read-Host -AsSecureString)\n"
            << "  # then point `certificate` at the file and set pfx_password.\n"
            << "  certificate = " << q("EXPORT-FROM-WINDOWS-" + thumb + ".pfx") << "\n"
            << "  pfx_password = \"\"\n";
          report.differences.push_back(where + ": https binding " + info + ": server certificate " + thumb +
                                       " is in the Windows store; placeholder written (use --certificate " + info + "=CERT.pem:KEY.pem)");
        }
        // "Negotiate Client Certificate" off while a location negotiates: IIS asked on demand.
        if (nb && !nb->negotiate_client_cert && negotiates) {
          t << "  client_certificate = \"on-demand\"\n";
          report.imported.push_back(where + ": binding " + info + ": IIS asked for the client certificate on demand "
                                    "(Negotiate Client Certificate disabled): client_certificate = \"on-demand\"");
          report.differences.push_back(where + ": binding " + info + ": browsers (TLS 1.3 without post-handshake "
                                       "authentication) need a step-up binding: add [sites.step_up] (docs/on-demand.md), "
                                       "or they get 403.7 where IIS's renegotiation failed");
        }
      }
      endpoint_protocol_seen.insert(endpoint_key);
    }

    if (negotiates || !o.trusted_cas.empty()) {
      t << "\n  [sites.client_certificates]\n";
      if (!o.trusted_cas.empty()) {
        t << "  trusted_cas = " << arr(o.trusted_cas) << "\n";
      } else {
        t << "  # Windows took trusted issuers from its certificate stores" << (tls_settings && !tls_settings->ctl_store.empty() ? " (CTL store " + comment_text(tls_settings->ctl_store) + ")" : "")
          << ": export the issuing CAs as PEM and list them here.\n  trusted_cas = [\"EXPORT-TRUSTED-CAS.pem\"]\n";
        report.differences.push_back(where + ": the trusted client-certificate issuers come from Windows stores: placeholder written (use --trusted-cas)");
      }
      bool revocation = tls_settings ? tls_settings->verify_revocation : true;
      bool cached = tls_settings && tls_settings->cached_only;
      t << "  usage_check = " << (tls_settings && !tls_settings->usage_check ? "false" : "true") << "\n";
      if (!revocation) {
        t << "  revocation = \"off\"\n";
      } else if (cached) {
        t << "  revocation = \"cache-only\"\n";
        if (o.crl_files.empty())
          report.differences.push_back(where + ": revocation = \"cache-only\" (verifyrevocationwithcachedclientcertonly) with no crl_files: only CRLs certgate has fetched before (cache_dir) count; add your CAs' CRLs (--crl-files) or every new certificate gets 403.13");
      } else {
        t << "  revocation = \"online\"\n";
      }
      if (revocation && tls_settings && tls_settings->freshness_seconds)
        t << "  freshness_seconds = " << tls_settings->freshness_seconds << "\n";
      if (revocation && tls_settings && tls_settings->url_timeout_ms)
        t << "  url_timeout_ms = " << std::max(100L, tls_settings->url_timeout_ms) << "\n";
      if (!o.crl_files.empty()) t << "  crl_files = " << arr(o.crl_files) << "\n";
      if (tls_settings && tls_settings->ds_mapper)
        report.differences.push_back(where + ": DS mapper usage (Active Directory mapping) is enabled: add [sites.directory_mapping] with your domain controllers, base DN and service account (docs/directory.md); it is not derived from IIS settings");
    }

    if (eff.mapping.value_or(false) || !eff.one_to_one.empty() || !eff.many_to_one.empty()) {
      t << "\n  [sites.mapping]\n  enabled = " << (eff.mapping.value_or(false) ? "true" : "false") << "\n";
      if (eff.one_to_one_enabled) t << "  one_to_one_enabled = " << (*eff.one_to_one_enabled ? "true" : "false") << "\n";
      if (eff.many_to_one_enabled) t << "  many_to_one_enabled = " << (*eff.many_to_one_enabled ? "true" : "false") << "\n";
      for (const auto& e : eff.one_to_one) {
        t << "\n  [[sites.mapping.one_to_one]]\n  user = " << q(e.user) << "\n";
        if (!e.password_note.empty())
          t << "  # password: " << comment_text(e.password_note) << ".\n  # certgate does not need it to map; for two-factor locations set one with\n"
            << "  #   certgate users add -f users.htpasswd " << comment_text(e.user) << "\n";
        t << "  certificate = " << q(e.certificate) << "\n";
        if (!e.enabled) t << "  enabled = false\n";
      }
      std::set<std::string> names;
      for (const auto& m : eff.many_to_one) {
        std::string unique = m.name.empty() ? "mapping" : m.name;
        for (int n = 2; !names.insert(unique).second; ++n) unique = m.name + " (" + std::to_string(n) + ")";
        t << "\n  [[sites.mapping.many_to_one]]\n  name = " << q(unique) << "\n";
        if (!m.description.empty()) t << "  description = " << q(m.description) << "\n";
        if (!m.user.empty()) t << "  user = " << q(m.user) << "\n";
        t << "  permission = " << (m.allow ? "\"allow\"" : "\"deny\"") << "\n";
        if (!m.enabled) t << "  enabled = false\n";
        for (const auto& r : m.rules)
          t << "    [[sites.mapping.many_to_one.rules]]\n    field = " << q(r.field) << "\n    subfield = " << q(r.subfield)
            << "\n    match = " << q(r.match) << "\n    case_sensitive = " << (r.case_sensitive ? "true" : "false") << "\n";
      }
    }
    if (eff.basic.value_or(false)) {
      t << "\n  [sites.basic]\n  enabled = true\n  # Windows accounts do not carry over: create this file with `certgate users add`.\n"
        << "  users_file = \"users.htpasswd\"\n";
      if (eff.realm) t << "  realm = " << q(*eff.realm) << "\n";
    }

    // `all_keys`: write empty lists too, so a location does not inherit its parent's lists
    // (certgate merges per key; IIS recomputes the whole rule list).
    auto authz_lists = [](const std::vector<AuthzRule>& rules, std::ostringstream& out, const std::string& indent,
                          bool all_keys) {
      std::vector<std::string> au, du, ag, dg;
      bool allow_all = false;
      for (const auto& r : rules) {
        for (const auto& u : r.users) {
          if (r.allow && u == "*") allow_all = true;
          (r.allow ? au : du).push_back(u);
        }
        for (const auto& g : r.roles) (r.allow ? ag : dg).push_back(g);
      }
      if (allow_all) au.clear(), ag.clear();  // IIS "*": everyone, so allow lists restrict nothing
      if (all_keys || !au.empty()) out << indent << "allow_users = " << arr(au) << "\n";
      if (all_keys || !du.empty()) out << indent << "deny_users = " << arr(du) << "\n";
      if (all_keys || !ag.empty()) out << indent << "allow_groups = " << arr(ag) << "\n";
      if (all_keys || !dg.empty()) out << indent << "deny_groups = " << arr(dg) << "\n";
    };
    if (eff.has_authz) {
      std::ostringstream lists;
      authz_lists(eff.authz, lists, "  ", false);
      if (!lists.str().empty())
        t << "\n  [[sites.locations]]\n  # the site's own authorization rules\n  path = \"/\"\n" << lists.str();
    }
    Scope running = eff;
    for (const auto& key : sub) {
      const Scope& s = scopes[key];
      std::string path = scope_names[key].substr(name.size());
      if (path.empty() || path[0] != '/') path = "/" + path;
      running = merge(running, s);
      std::ostringstream body;
      if (s.ssl_flags) body << "  ssl_flags = " << arr(*s.ssl_flags) << "\n";
      if (s.anonymous) body << "  anonymous = " << (*s.anonymous ? "true" : "false") << "\n";
      if (!s.hidden_ops.empty()) body << "  hidden_segments = " << arr(hidden_segments(running.hidden_ops)) << "\n";
      if (s.has_authz) authz_lists(running.authz, body, "  ", true);
      if (body.str().empty()) continue;
      t << "\n  [[sites.locations]]\n  path = " << q(path) << "\n" << body.str();
    }

    // A page named by an absolute Windows path goes through --path-map; any other path is
    // the site's own (below its root folder), as IIS reads it.
    if (!eff.error_pages.empty()) {
      t << "\n  [sites.error_pages]\n";
      for (const auto& [key, file] : eff.error_pages) {
        const bool absolute = file.size() > 2 && (file[1] == ':' || file[0] == '%' || file.rfind("\\\\", 0) == 0);
        // A page is served to anyone: no "..", absolute paths included — after --path-map,
        // C:\sites\shop\..\..\..\etc\shadow would name a file outside every mapped folder (and IIS
        // itself refuses absolute paths in a delegated web.config).
        std::string slashed = file;
        std::replace(slashed.begin(), slashed.end(), '\\', '/');
        if (("/" + slashed + "/").find("/../") != std::string::npos) {
          report.ignored.push_back(where + ": custom error page for " + key + " (" + file + "): " +
                                   (absolute ? "a path with '..' segments" : "a path leaving the site's folder"));
          continue;
        }
        bool page_mapped = true;
        std::string local;
        if (absolute) {
          local = map_path(file, o, page_mapped);
        } else {
          local = file;
          std::replace(local.begin(), local.end(), '\\', '/');
          while (!local.empty() && local.front() == '/') local.erase(0, 1);
          local = root_dir + "/" + local;
          page_mapped = physical.empty() || mapped;  // the site's folder itself was mapped
        }
        if (page_mapped) {
          t << "  " << q(key) << " = " << q(local) << "\n";
        } else {
          t << "  # " << q(key) << " = " << q(comment_text(file)) << "  (no --path-map for this path)\n";
          report.differences.push_back(where + ": custom error page for " + key + " (" + file +
                                       ") has no --path-map; left commented out");
        }
      }
    }

    auto log = site.child("logFile");
    std::string period = log.attribute("period") ? log.attribute("period").value() : defaults_log.attribute("period").value();
    std::string flags = log.attribute("logExtFileFlags") ? log.attribute("logExtFileFlags").value() : defaults_log.attribute("logExtFileFlags").value();
    std::string dir = log.attribute("directory") ? log.attribute("directory").value() : defaults_log.attribute("directory").value();
    std::string format = log.attribute("logFormat") ? log.attribute("logFormat").value() : defaults_log.attribute("logFormat").value();
    if (!format.empty() && format != "W3C")
      report.differences.push_back(where + ": log format " + format + ": certgate writes W3C extended logs");
    if (!period.empty() || !flags.empty() || !dir.empty()) {
      t << "\n  [sites.log]\n";
      if (!dir.empty()) {
        bool dir_mapped = false;
        std::string d = map_path(dir, o, dir_mapped);
        if (dir_mapped) t << "  directory = " << q(d + "/W3SVC" + std::string(site.attribute("id").value())) << "\n";
        else report.differences.push_back(where + ": log directory " + dir + " has no --path-map; logs go to log_dir/W3SVC<id>");
      }
      std::string p = lower(period);
      if (p == "maxsize") report.differences.push_back(where + ": log period MaxSize: certgate rolls daily instead");
      else if (!p.empty()) t << "  period = " << q(p) << "\n";
      if (!flags.empty()) t << "  fields = " << arr(log_fields(flags, report, where)) << "\n";
      if (attr_bool(log, "localTimeRollover", false))
        report.differences.push_back(where + ": localTimeRollover: certgate rolls log files at UTC midnight");
    }
    report.imported.push_back(where);
  }
  if (site_count > 0)
    report.differences.push_back("request filtering: certgate also answers 404.8 for dot-segments (.git, .env, "
                                 ".htpasswd; not .well-known), which IIS serves; set allow_dot_segments = true "
                                 "on a site or location to serve them");
  if (site_count == 0)
    throw ImportError(o.only_site.empty() ? ah + ": no <site> found"
                                          : ah + ": no site named '" + o.only_site + "'");
  result.toml = t.str();
  return result;
}

}  // namespace certgate::iis
