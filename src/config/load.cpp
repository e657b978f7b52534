#include "config/config.hpp"
#include "net/cidr.hpp"

#include <openssl/sha.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <cctype>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

namespace certgate::config {
namespace {

// Reads one TOML table, remembering which keys were used so that a misspelt key is an error
// instead of a setting silently left at its default.
class Table {
 public:
  Table(const toml::table& t, std::string path, const fs::path& file)
      : t_(t), path_(std::move(path)), file_(file) {}

  [[noreturn]] void fail_at(const toml::source_region& where, const std::string& key,
                            const std::string& msg) const {
    throw ConfigError(file_.string() + ":" + std::to_string(where.begin.line) + ":" +
                      std::to_string(where.begin.column) + ": " + qualified(key) + ": " + msg);
  }
  [[noreturn]] void fail(const std::string& key, const std::string& msg) const {
    const toml::node* n = t_.get(key);
    fail_at(n ? n->source() : t_.source(), key, msg);
  }
  std::string qualified(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }
  const toml::node* node(const std::string& key) {
    used_.insert(key);
    return t_.get(key);
  }

  std::optional<std::string> str(const std::string& key) {
    const toml::node* n = node(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) fail(key, "expected a string");
    return n->as_string()->get();
  }
  std::string str(const std::string& key, const std::string& def) {
    return str(key).value_or(def);
  }
  std::optional<bool> boolean(const std::string& key) {
    const toml::node* n = node(key);
    if (!n) return std::nullopt;
    if (!n->is_boolean()) fail(key, "expected true or false");
    return n->as_boolean()->get();
  }
  bool boolean(const std::string& key, bool def) { return boolean(key).value_or(def); }
  std::int64_t integer(const std::string& key, std::int64_t def, std::int64_t lo,
                       std::int64_t hi) {
    const toml::node* n = node(key);
    if (!n) return def;
    if (!n->is_integer()) fail(key, "expected an integer");
    std::int64_t v = n->as_integer()->get();
    if (v < lo || v > hi)
      fail(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    return v;
  }
  std::optional<std::vector<std::string>> strings(const std::string& key) {
    const toml::node* n = node(key);
    if (!n) return std::nullopt;
    const toml::array* a = n->as_array();
    if (!a) fail(key, "expected an array of strings");
    std::vector<std::string> out;
    for (const auto& e : *a) {
      if (!e.is_string()) fail_at(e.source(), key, "expected an array of strings");
      out.push_back(e.as_string()->get());
    }
    return out;
  }
  template <typename E>
  E choice(const std::string& key, E def, const std::vector<std::pair<std::string, E>>& opts) {
    auto v = str(key);
    if (!v) return def;
    for (const auto& [name, e] : opts)
      if (*v == name) return e;
    std::string list;
    for (const auto& [name, e] : opts) list += (list.empty() ? "\"" : ", \"") + name + "\"";
    fail(key, "expected one of " + list + "; got \"" + *v + "\"");
  }
  std::optional<Table> table(const std::string& key) {
    const toml::node* n = node(key);
    if (!n) return std::nullopt;
    if (!n->is_table()) fail(key, "expected a table ([" + qualified(key) + "])");
    return Table(*n->as_table(), qualified(key), file_);
  }
  std::vector<Table> tables(const std::string& key) {
    std::vector<Table> out;
    const toml::node* n = node(key);
    if (!n) return out;
    const toml::array* a = n->as_array();
    if (!a) fail(key, "expected an array of tables ([[" + qualified(key) + "]])");
    std::size_t i = 0;
    for (const auto& e : *a) {
      if (!e.is_table()) fail_at(e.source(), key, "expected an array of tables");
      out.emplace_back(*e.as_table(), qualified(key) + "[" + std::to_string(i++) + "]", file_);
    }
    return out;
  }
  // Every key not read is unknown: report the first one with its position.
  void finish() const {
    for (const auto& [k, v] : t_) {
      if (used_.count(std::string(k.str()))) continue;
      fail_at(k.source(), std::string(k.str()), "unknown key (see docs/configuration.md)");
    }
  }
  const toml::source_region& source() const { return t_.source(); }
  const std::string& path() const { return path_; }

 private:
  const toml::table& t_;
  std::string path_;
  fs::path file_;
  std::set<std::string> used_;
};

fs::path resolve(const fs::path& base, const std::string& p) {
  fs::path path(p);
  return path.is_absolute() ? path : (base / path).lexically_normal();
}

std::vector<fs::path> paths(Table& t, const std::string& key, const fs::path& base) {
  std::vector<fs::path> out;
  for (const auto& s : t.strings(key).value_or(std::vector<std::string>{}))
    out.push_back(resolve(base, s));
  return out;
}

auth::SslFlags ssl_flags(Table& t, const std::string& key, Config& cfg) {
  auth::SslFlags flags;
  const auto words = t.strings(key).value_or(std::vector<std::string>{});
  for (const auto& word : words) {
    auto f = auth::parse_ssl_flag(word);
    if (!f)
      t.fail(key, "unknown flag \"" + word +
                      "\"; expected Ssl, SslNegotiateCert, SslRequireCert, Ssl128 or None");
    flags.bits |= f->bits;
  }
  // spec: behaviour.md §1 step 4 (decision): SslRequireCert alone implies SslNegotiateCert.
  if (flags.has(auth::kSslRequireCert) && !flags.has(auth::kSslNegotiateCert)) {
    cfg.warnings.push_back(t.qualified(key) +
                           ": SslRequireCert without SslNegotiateCert; negotiating anyway");
    flags.bits |= auth::kSslNegotiateCert;
  }
  return flags;
}

bool split_listen(const std::string& listen, std::string& addr, std::uint16_t& port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 >= listen.size()) return false;
  addr = listen.substr(0, colon);
  std::string p = listen.substr(colon + 1);
  if (!std::all_of(p.begin(), p.end(), ::isdigit) || p.size() > 5) return false;
  unsigned long v = std::stoul(p);
  if (v == 0 || v > 65535) return false;
  port = static_cast<std::uint16_t>(v);
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']')
    addr = addr.substr(1, addr.size() - 2);
  if (addr == "*" || addr.empty()) addr = "0.0.0.0";
  return true;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// [server.fetch]. Proxy and LDAP host URLs are checked here, where the error can point at them.
void read_fetch(Table& t, FetchSettings& f, const fs::path& base) {
  f.proxy = t.str("proxy");
  if (f.proxy && !f.proxy->empty()) {
    const std::string& p = *f.proxy;
    if (!(p.starts_with("http://") || p.starts_with("https://")) || p.size() <= 8 ||
        p.find_first_of(" \t\r\n") != std::string::npos)
    {
      // The value may carry the proxy's password: the error shows the rest of it.
      std::string shown = p;
      if (auto at = shown.rfind('@'); at != std::string::npos) {
        const auto scheme = shown.find("://");
        const std::size_t from = scheme == std::string::npos ? 0 : scheme + 3;
        if (at >= from) shown.replace(from, at - from, "…");
      }
      t.fail("proxy", "expected http://host:port or https://host:port (\"\" = no proxy); got \"" + shown + "\"");
    }
  }
  f.no_proxy = t.strings("no_proxy");
  if (f.no_proxy)
    for (const auto& h : *f.no_proxy)
      if (h.empty() || h.find_first_of(" \t\r\n,") != std::string::npos)
        t.fail("no_proxy", "expected host names, .domain suffixes, addresses or CIDR ranges, one per "
                           "string; got \"" + h + "\"");
  f.ldap_hosts = t.strings("ldap_hosts").value_or(std::vector<std::string>{});
  for (auto& h : f.ldap_hosts) {
    while (h.size() > 1 && h.back() == '/') h.pop_back();
    const std::size_t scheme = h.starts_with("ldap://") ? 7 : h.starts_with("ldaps://") ? 8 : 0;
    if (scheme == 0 || h.size() == scheme || h.find_first_of(" \t\r\n/?,@", scheme) != std::string::npos)
      t.fail("ldap_hosts", "expected ldap://host[:port] or ldaps://host[:port]; got \"" + h + "\"");
  }
  f.ldap_bind_dn = t.str("ldap_bind_dn", "");
  if (auto pw_file = t.str("ldap_password_file")) {
    const fs::path file = resolve(base, *pw_file);
    std::ifstream in(file, std::ios::binary);
    if (!in) t.fail("ldap_password_file", "cannot read " + file.string());
    std::getline(in, f.ldap_password);
    while (!f.ldap_password.empty() && (f.ldap_password.back() == '\r' || f.ldap_password.back() == '\n'))
      f.ldap_password.pop_back();
  }
  if (!f.ldap_bind_dn.empty() && f.ldap_password.empty())
    t.fail("ldap_bind_dn", "a bind DN needs ldap_password_file (an empty password would be an "
                           "unauthenticated bind)");
  if (f.ldap_bind_dn.empty() && !f.ldap_password.empty())
    t.fail("ldap_password_file", "a password without ldap_bind_dn would never be used");
  t.finish();
}

// [server.state]. The Redis password stays out of the URL (and so out of error messages).
void read_state(Table& t, StateSettings& st, const fs::path& base) {
  st.backend = t.choice<StateBackend>("backend", StateBackend::Memory,
                                      {{"memory", StateBackend::Memory}, {"redis", StateBackend::Redis}});
  st.workers = static_cast<unsigned>(t.integer("workers", st.workers, 1, 64));
  st.max_pending = static_cast<std::size_t>(t.integer("max_pending", 1024, 1, 1000000));
  st.timeout_ms = static_cast<std::uint32_t>(t.integer("timeout_ms", st.timeout_ms, 10, 60000));
  st.max_entries = static_cast<std::size_t>(t.integer("max_entries", 100000, 16, 100000000));
  st.url = t.str("url", "");
  if (st.backend == StateBackend::Redis) {
    if (st.url.empty()) t.fail_at(t.source(), "url", "backend = \"redis\" needs url = \"redis://host:port/db\"");
    st.tls = st.url.starts_with("rediss://");
    if (!st.tls && !st.url.starts_with("redis://"))
      t.fail("url", "expected redis://host[:port][/db] or rediss://host[:port][/db]; got \"" + st.url + "\"");
    std::string rest = st.url.substr(st.tls ? 9 : 8);
    if (rest.empty() || rest[0] == ':' || rest[0] == '/')
      t.fail("url", "expected redis://host[:port][/db]; got \"" + st.url + "\"");
    if (rest.find('@') != std::string::npos)
      t.fail("url", "put the password in password_file, not in the URL");
    if (auto slash = rest.find('/'); slash != std::string::npos) {
      const std::string db = rest.substr(slash + 1);
      rest.resize(slash);
      if (!db.empty()) {
        if (db.size() > 5 || db.find_first_not_of("0123456789") != std::string::npos)
          t.fail("url", "the database after '/' must be a number; got \"" + db + "\"");
        st.database = std::stoi(db);
      }
    }
    std::uint16_t port = 6379;
    std::string host = rest;
    if (rest.find(':') != std::string::npos && !split_listen(rest, host, port))
      t.fail("url", "expected redis://host[:port][/db]; got \"" + st.url + "\"");
    if (host.empty() || host.find_first_of(" \t\r\n?#") != std::string::npos)
      t.fail("url", "expected redis://host[:port][/db]; got \"" + st.url + "\"");
    st.host = host;
    st.port = port;
  } else if (!st.url.empty()) {
    t.fail("url", "only the redis backend has a URL");
  }
  // Read at start by the store (a missing file is named here, at its key, rather than there).
  auto tls_file = [&](const char* key, fs::path& into) {
    auto v = t.str(key);
    if (!v) return;
    if (!st.tls) t.fail(key, "only a rediss:// url uses TLS files");
    into = resolve(base, *v);
    if (!std::ifstream(into)) t.fail(key, "cannot read " + into.string());
  };
  tls_file("ca_file", st.ca_file);
  tls_file("client_certificate", st.client_certificate);
  tls_file("client_key", st.client_key);
  if (!st.client_key.empty() && st.client_certificate.empty())
    t.fail("client_key", "needs client_certificate");
  if (auto pw_file = t.str("password_file")) {
    if (st.backend != StateBackend::Redis) t.fail("password_file", "only the redis backend has a password");
    const fs::path file = resolve(base, *pw_file);
    std::ifstream in(file, std::ios::binary);
    if (!in) t.fail("password_file", "cannot read " + file.string());
    std::getline(in, st.password);
    while (!st.password.empty() && (st.password.back() == '\r' || st.password.back() == '\n')) st.password.pop_back();
    if (st.password.empty()) t.fail("password_file", file.string() + " is empty");
  }
  t.finish();
}

void read_token_login(Table& t, TokenLogin& tl, const fs::path& base) {
  tl.enabled = t.boolean("enabled", true);
  tl.nonce_lifetime_seconds = static_cast<std::uint32_t>(t.integer("nonce_lifetime_seconds", 120, 5, 3600));
  tl.session_seconds = static_cast<std::uint32_t>(t.integer("session_seconds", 3600, 60, 7 * 86400));
  tl.cookie_name = t.str("cookie_name", tl.cookie_name);
  // RFC 6265 token characters only: the name goes into Set-Cookie as it is.
  if (tl.cookie_name.empty() || tl.cookie_name.size() > 64 ||
      tl.cookie_name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
          std::string::npos)
    t.fail("cookie_name", "expected 1-64 letters, digits, '_', '-' or '.'");
  tl.max_response_bytes = static_cast<std::size_t>(t.integer("max_response_bytes", 64 << 10, 1024, 1 << 20));
  auto key_file = t.str("cookie_key_file");
  if (tl.enabled && !key_file)
    t.fail_at(t.source(), "cookie_key_file", "missing: a file of at least 32 random bytes, the same on every "
                                              "instance (e.g. head -c 32 /dev/urandom > token.key)");
  if (key_file) {
    const fs::path file = resolve(base, *key_file);
    std::ifstream in(file, std::ios::binary);
    if (!in) t.fail("cookie_key_file", "cannot read " + file.string());
    tl.cookie_key.assign(std::istreambuf_iterator<char>(in), {});
    if (tl.cookie_key.size() < 32 || tl.cookie_key.size() > 4096)
      t.fail("cookie_key_file", file.string() + " must hold 32 to 4096 bytes (it holds " +
                                    std::to_string(tl.cookie_key.size()) + ")");
  }
  t.finish();
}

void read_server(Table& t, Config& cfg, const fs::path& base) {
  ServerSettings& s = cfg.server;
  s.log_dir = resolve(base, t.str("log_dir", "logs"));
  s.threads = static_cast<unsigned>(t.integer("threads", 0, 0, 256));
  if (auto pid = t.str("pid_file")) s.pid_file = resolve(base, *pid);
  s.detailed_errors = t.choice<DetailedErrors>("detailed_errors", DetailedErrors::Local,
                                               {{"local", DetailedErrors::Local},
                                                {"always", DetailedErrors::Always},
                                                {"never", DetailedErrors::Never}});
  s.shutdown_grace_ms = static_cast<std::uint32_t>(
      t.integer("shutdown_grace_ms", s.shutdown_grace_ms, 0, 3600000));
  Limits& l = s.limits;
  l.max_header_bytes = static_cast<std::size_t>(
      t.integer("max_header_bytes", static_cast<std::int64_t>(l.max_header_bytes), 1024,
                static_cast<std::int64_t>(kMaxHeadBytes)));
  l.max_headers = static_cast<std::size_t>(t.integer("max_headers", 100, 1, 10000));
  l.max_connections = static_cast<std::size_t>(t.integer("max_connections", 20000, 1, 10000000));
  l.max_pending_password_checks =
      static_cast<std::size_t>(t.integer("max_pending_password_checks", 64, 1, 100000));
  l.h2_max_concurrent_streams = static_cast<std::uint32_t>(t.integer("h2_max_concurrent_streams", 100, 1, 10000));
  l.h2_reset_burst = static_cast<std::uint32_t>(t.integer("h2_reset_burst", 1000, 1, 1000000));
  l.h2_resets_per_second = static_cast<std::uint32_t>(t.integer("h2_resets_per_second", 33, 1, 1000000));
  l.max_url_bytes = static_cast<std::size_t>(
      t.integer("max_url_bytes", static_cast<std::int64_t>(l.max_url_bytes), 16, 1 << 20));
  l.max_body_bytes = static_cast<std::uint64_t>(t.integer(
      "max_body_bytes", static_cast<std::int64_t>(l.max_body_bytes), 0, std::int64_t{1} << 40));
  auto ms = [&](const char* key, std::uint32_t def) {
    return static_cast<std::uint32_t>(t.integer(key, def, 100, 3600000));
  };
  l.header_timeout_ms = ms("header_timeout_ms", l.header_timeout_ms);
  l.body_timeout_ms = ms("body_timeout_ms", l.body_timeout_ms);
  l.keepalive_timeout_ms = ms("keepalive_timeout_ms", l.keepalive_timeout_ms);
  l.handshake_timeout_ms = ms("handshake_timeout_ms", l.handshake_timeout_ms);
  s.cache_dir = resolve(base, t.str("cache_dir", "cache"));
  if (auto c = t.str("cache_dir"); c && c->empty()) s.cache_dir.clear();
  s.max_fetch_bytes = static_cast<std::size_t>(t.integer("max_fetch_bytes", 10 << 20, 1024, std::int64_t{1} << 31));
  s.max_fetch_redirects = static_cast<int>(t.integer("max_fetch_redirects", 3, 0, 10));
  s.revocation_cache_bytes = static_cast<std::size_t>(
      t.integer("revocation_cache_bytes", 256 << 20, 1 << 20, std::int64_t{1} << 40));
  s.revocation_cache_entries = static_cast<std::size_t>(t.integer("revocation_cache_entries", 2000, 10, 10000000));
  s.revocation_urls_per_certificate =
      static_cast<std::size_t>(t.integer("revocation_urls_per_certificate", 4, 1, 64));
  s.revocation_concurrent_fetches =
      static_cast<std::size_t>(t.integer("revocation_concurrent_fetches", 16, 1, 1024));
  if (auto f = t.table("fetch")) read_fetch(*f, s.fetch, base);
  if (auto st = t.table("state")) read_state(*st, s.state, base);
  s.session_resumption = t.choice<SessionResumption>("session_resumption", SessionResumption::Cache,
                                                     {{"cache", SessionResumption::Cache},
                                                      {"tickets", SessionResumption::Tickets}});
  s.session_cache_size = static_cast<std::size_t>(t.integer("session_cache_size", 20000, 1, 10000000));
  s.session_cache_bytes = static_cast<std::size_t>(
      t.integer("session_cache_bytes", 128 << 20, 1 << 20, std::int64_t{1} << 40));
  s.session_timeout_seconds = static_cast<std::uint32_t>(t.integer("session_timeout_seconds", 3600, 1, 7 * 86400));
  s.ticket_key_files = paths(t, "ticket_key_files", base);
  if (!s.ticket_key_files.empty()) {
    // Instances share tickets, not a session cache: the files only make sense with tickets.
    if (t.str("session_resumption").value_or("tickets") != "tickets")
      t.fail("ticket_key_files", "needs session_resumption = \"tickets\" (the session cache is per instance)");
    s.session_resumption = SessionResumption::Tickets;
  }
  s.max_client_cert_list_bytes = static_cast<std::size_t>(
      t.integer("max_client_cert_list_bytes", 32 << 10, 4096, 16 << 20));
  s.ciphers = t.str("ciphers", s.ciphers);
  if (s.ciphers.empty()) t.fail("ciphers", "must not be empty (the default is \"DEFAULT:!kRSA\")");
  s.admin_listen = t.str("admin_listen", "");
  if (!s.admin_listen.empty() && !split_listen(s.admin_listen, s.admin_address, s.admin_port))
    t.fail("admin_listen", "expected address:port, e.g. \"127.0.0.1:9180\"");
  if (auto allow = t.strings("admin_allow")) {
    for (const auto& block : *allow)
      if (!net::Cidr::parse(block))
        t.fail("admin_allow", "not an address block: \"" + block + "\" (e.g. \"10.0.0.0/8\", \"::1/128\")");
    s.admin_allow = *allow;
  }
  if (auto hosts = t.strings("admin_hosts")) {
    for (auto& h : *hosts) {
      const bool name = !h.empty() && h.size() <= 253 && h.front() != '.' && h.front() != '-' &&
                        std::all_of(h.begin(), h.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '.'; });
      if (!name) t.fail("admin_hosts", "not a host name: \"" + h + "\" (e.g. \"certgate1.example.net\"; no port)");
      std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    }
    s.admin_hosts = *hosts;
  }
  s.admin_client_cas = paths(t, "admin_client_cas", base);
  if (auto c = t.str("admin_certificate")) s.admin_certificate = resolve(base, *c);
  if (auto k = t.str("admin_key")) s.admin_key = resolve(base, *k);
  if (!s.admin_client_cas.empty() && s.admin_certificate.empty())
    t.fail("admin_client_cas", "needs admin_certificate (the admin listener's own TLS certificate)");
  if (s.admin_client_cas.empty() && (!s.admin_certificate.empty() || !s.admin_key.empty()))
    t.fail(s.admin_certificate.empty() ? "admin_key" : "admin_certificate",
           "set admin_client_cas too: TLS on the admin listener is there to require a client certificate");
  s.user = t.str("user", "");
  for (unsigned char c : s.user)
    if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.'))
      t.fail("user", "not an account name: \"" + s.user + "\"");
  t.finish();
}

Binding read_binding(Table& t, const fs::path& base) {
  Binding b;
  auto listen = t.str("listen");
  if (!listen) t.fail_at(t.source(), "listen", "missing (e.g. listen = \"127.0.0.1:8443\")");
  b.listen = *listen;
  if (!split_listen(b.listen, b.address, b.port))
    t.fail("listen", "expected address:port, e.g. \"127.0.0.1:8443\", \"[::1]:8443\" or "
                     "\"*:8443\"; got \"" + b.listen + "\"");
  b.https = t.choice<bool>("protocol", true, {{"https", true}, {"http", false}});
  b.host = lower(t.str("host", ""));
  auto mode = t.str("client_certificate", "handshake");
  if (mode != "handshake" && mode != "on-demand")
    t.fail("client_certificate", "expected \"handshake\" or \"on-demand\"; got \"" + mode + "\"");
  b.on_demand = mode == "on-demand";
  if (b.on_demand && !b.https)
    t.fail("client_certificate", "\"on-demand\" needs an https binding (protocol = \"https\")");
  if (auto c = t.str("certificate")) b.certificate = resolve(base, *c);
  if (auto k = t.str("key")) b.key = resolve(base, *k);
  b.pfx_password = t.str("pfx_password", "");
  b.proxy_protocol = t.boolean("proxy_protocol", false);
  b.proxy_protocol_from = t.strings("proxy_protocol_from").value_or(std::vector<std::string>{});
  for (const auto& c : b.proxy_protocol_from)
    if (!net::Cidr::parse(c))
      t.fail("proxy_protocol_from", "\"" + c + "\" is not an address or CIDR range (e.g. \"10.0.0.0/8\", \"::1\")");
  if (b.proxy_protocol && b.proxy_protocol_from.empty())
    t.fail("proxy_protocol", "needs proxy_protocol_from: the load balancers' addresses allowed to send the header");
  if (!b.proxy_protocol && !b.proxy_protocol_from.empty())
    t.fail("proxy_protocol_from", "has no effect without proxy_protocol = true");
  if (auto protocols = t.strings("protocols")) {
    if (!b.https) t.fail("protocols", "is for https bindings only (cleartext HTTP/2, h2c, is not served)");
    if (protocols->empty()) t.fail("protocols", "must name at least one of \"h2\", \"http/1.1\"");
    for (std::size_t i = 0; i < protocols->size(); ++i) {
      const std::string& p = (*protocols)[i];
      if (p != "h2" && p != "http/1.1")
        t.fail("protocols", "expected \"h2\" or \"http/1.1\"; got \"" + p + "\"");
      if (std::find(protocols->begin(), protocols->begin() + static_cast<std::ptrdiff_t>(i), p) !=
          protocols->begin() + static_cast<std::ptrdiff_t>(i))
        t.fail("protocols", "names \"" + p + "\" twice");
    }
    b.protocols = std::move(*protocols);
  }
  if (b.https && b.certificate.empty())
    t.fail_at(t.source(), "certificate",
              "missing: an https binding needs a server certificate (PEM chain or .pfx/.p12)");
  t.finish();
  return b;
}

void read_client_certs(Table& t, ClientCertificates& cc, const fs::path& base, Config& cfg) {
  cc.trusted_cas = paths(t, "trusted_cas", base);
  cc.intermediates = paths(t, "intermediates", base);
  cc.crl_files = paths(t, "crl_files", base);
  cc.send_ca_list = t.boolean("send_ca_list", true);
  cc.ca_list_intermediates = t.boolean("ca_list_intermediates", !cc.intermediates.empty());
  cc.usage_check = t.boolean("usage_check", true);
  cc.revocation = t.choice<Revocation>("revocation", Revocation::Online,
                                       {{"online", Revocation::Online},
                                        {"cache-only", Revocation::CacheOnly},
                                        {"off", Revocation::Off}});
  cc.prefer_ocsp = t.boolean("prefer_ocsp", false);
  cc.freshness_seconds = static_cast<std::uint32_t>(t.integer("freshness_seconds", 0, 0, 365 * 86400));
  cc.url_timeout_ms = static_cast<std::uint32_t>(t.integer("url_timeout_ms", 15000, 100, 600000));
  cc.soft_fail = t.boolean("soft_fail", false);
  cc.retry_seconds = static_cast<std::uint32_t>(t.integer("retry_seconds", 30, 0, 86400));
  // Below 1024 bits an RSA key is factored on commodity hardware: no setting accepts that.
  cc.min_rsa_bits = static_cast<std::uint32_t>(t.integer("min_rsa_bits", 2048, 1024, 16384));
  cc.allow_sha1 = t.boolean("allow_sha1", false);
  cc.x509_strict = t.boolean("x509_strict", true);
  cc.max_chain_depth = static_cast<std::uint32_t>(t.integer("max_chain_depth", 8, 0, 64));
  // Accepted (legacy smart cards, old CAs), but said out loud: each one lets weaker certificates in.
  if (cc.min_rsa_bits < 2048)
    cfg.warnings.push_back(t.qualified("min_rsa_bits") + " = " + std::to_string(cc.min_rsa_bits) +
                           " weakens the site: RSA keys under 2048 bits are accepted");
  if (cc.allow_sha1)
    cfg.warnings.push_back(t.qualified("allow_sha1") +
                           " = true weakens the site: SHA-1 signatures (collisions are practical) are accepted");
  if (!cc.x509_strict)
    cfg.warnings.push_back(t.qualified("x509_strict") +
                           " = false weakens the site: RFC 5280 profile violations are accepted");
  t.finish();
}

const std::set<std::string>& known_log_fields() {
  static const std::set<std::string> f{
      "date", "time", "s-ip", "cs-method", "cs-uri-stem", "cs-uri-query", "s-port",
      "cs-username", "c-ip", "cs(User-Agent)", "cs(Referer)", "sc-status", "sc-substatus",
      "sc-win32-status", "time-taken", "s-sitename", "s-computername", "cs-version", "cs-host",
      "cs(Cookie)", "sc-bytes", "cs-bytes", "x-request-id", "x-reason"};
  return f;
}

void read_step_up(Table& t, StepUp& su, const fs::path& base) {
  su.enabled = true;
  auto url = t.str("url");
  if (!url) t.fail_at(t.source(), "url", "missing: the https URL of a binding that asks for the certificate "
                                         "at the handshake, e.g. \"https://login.example.test:8444/\"");
  su.url = *url;
  const std::string_view scheme = "https://";
  std::string rest = su.url.size() > scheme.size() && lower(su.url.substr(0, scheme.size())) == scheme
                         ? su.url.substr(scheme.size()) : std::string();
  const auto slash = rest.find('/');
  su.authority = lower(rest.substr(0, slash));
  const bool clean = std::all_of(su.url.begin(), su.url.end(), [](unsigned char c) {
    return c > 0x20 && c < 0x7f && c != '?' && c != '#' && c != '"' && c != '\\';
  });
  if (rest.empty() || slash == std::string::npos || su.authority.empty() || su.url.back() != '/' || !clean ||
      su.authority.find('@') != std::string::npos)
    t.fail("url", "expected an https URL ending with '/' and without query, e.g. "
                  "\"https://login.example.test:8444/\"; got \"" + su.url + "\"");
  su.cookie_name = t.str("cookie_name", su.cookie_name);
  const bool token = !su.cookie_name.empty() &&
                     std::all_of(su.cookie_name.begin(), su.cookie_name.end(), [](unsigned char c) {
                       return std::isalnum(c) || c == '_' || c == '-' || c == '.';
                     });
  if (!token) t.fail("cookie_name", "expected letters, digits, '_', '-' or '.'; got \"" + su.cookie_name + "\"");
  su.lifetime_seconds = static_cast<std::uint32_t>(t.integer("lifetime_seconds", 3600, 60, 30 * 86400));
  auto key = t.str("key_file");
  if (!key || key->empty())
    t.fail_at(t.source(), "key_file", "missing: a file of at least 32 random bytes (the cookie's HMAC key; "
                                      "share it between instances)");
  su.key_file = resolve(base, *key);
  t.finish();
}

void read_log(Table& t, SiteLog& log, const fs::path& base) {
  log.enabled = t.boolean("enabled", true);
  if (auto d = t.str("directory")) log.directory = resolve(base, *d);
  log.period = t.choice<LogPeriod>("period", LogPeriod::Daily,
                                   {{"hourly", LogPeriod::Hourly},
                                    {"daily", LogPeriod::Daily},
                                    {"weekly", LogPeriod::Weekly},
                                    {"monthly", LogPeriod::Monthly}});
  if (auto fields = t.strings("fields")) {
    for (const auto& f : *fields) {
      bool custom = (f.rfind("cs(", 0) == 0 || f.rfind("sc(", 0) == 0) && f.back() == ')';
      bool var = f.rfind("x(", 0) == 0 && f.back() == ')';
      if (!known_log_fields().count(f) && !custom && !var)
        t.fail("fields", "unknown W3C field \"" + f +
                             "\"; use a standard name, cs(Header), sc(Header) or x(VARIABLE)");
    }
    log.fields = *fields;
  }
  t.finish();
}

std::string where(const fs::path& file, const Table& t) {
  return file.filename().string() + ":" + std::to_string(t.source().begin.line) + ": " + t.path();
}

void read_mapping(Table& t, Mapping& m, const fs::path& file) {
  m.enabled = t.boolean("enabled", true);
  m.one_to_one_enabled = t.boolean("one_to_one_enabled", true);
  m.many_to_one_enabled = t.boolean("many_to_one_enabled", true);
  static const std::set<std::string> kMatch{"certificate", "public-key", "issuer-serial",
                                            "ski", "upn", "email"};
  for (auto& o : t.tables("one_to_one")) {
    OneToOne e;
    e.origin = where(file, o);
    e.line = static_cast<int>(o.source().begin.line);
    auto user = o.str("user");
    if (!user || user->empty()) o.fail_at(o.source(), "user", "missing: the account this certificate maps to");
    e.user = *user;
    e.match = o.str("match", "certificate");
    if (!kMatch.count(e.match))
      o.fail("match", "expected one of \"certificate\", \"public-key\", \"issuer-serial\", "
                      "\"ski\", \"upn\", \"email\"; got \"" + e.match + "\"");
    e.certificate = o.str("certificate", "");
    e.value = o.str("value", "");
    e.enabled = o.boolean("enabled", true);
    if (e.match == "certificate" && e.certificate.empty())
      o.fail_at(o.source(), "certificate", "missing: a certificate file or its base64 DER text");
    if (e.certificate.empty() == e.value.empty() && e.match != "certificate")
      o.fail_at(o.source(), "value", "give either certificate (to take the " + e.match +
                                         " from it) or value, not both and not neither");
    if (e.match == "certificate" && !e.value.empty())
      o.fail("value", "match = \"certificate\" compares the whole certificate: give certificate, not value");
    o.finish();
    m.one_to_one.push_back(std::move(e));
  }
  std::set<std::string> names;
  for (auto& o : t.tables("many_to_one")) {
    ManyToOne e;
    e.origin = where(file, o);
    auto name = o.str("name");
    if (!name || name->empty()) o.fail_at(o.source(), "name", "missing: every many-to-one mapping needs a unique name");
    e.name = *name;
    if (!names.insert(e.name).second) o.fail("name", "two many-to-one mappings are named \"" + e.name + "\"");
    e.description = o.str("description", "");
    e.allow = o.choice<bool>("permission", true, {{"allow", true}, {"deny", false}, {"Allow", true}, {"Deny", false}});
    e.user = o.str("user", "");
    if (e.allow && e.user.empty())
      o.fail_at(o.source(), "user", "missing: an allow mapping needs the account it maps to");
    e.enabled = o.boolean("enabled", true);
    for (auto& r : o.tables("rules")) {
      RuleConfig rc;
      rc.field = r.choice<std::string>("field", "", {{"Subject", "Subject"}, {"Issuer", "Issuer"},
                                                     {"subject", "Subject"}, {"issuer", "Issuer"}});
      if (rc.field.empty()) r.fail_at(r.source(), "field", "missing: Subject or Issuer");
      auto sub = r.str("subfield");
      if (!sub) r.fail_at(r.source(), "subfield", "missing: CN, O, OU, L, S, C, E, ...");
      rc.subfield = auth::canonical_label(*sub);
      if (rc.subfield.empty())
        r.fail("subfield", "unknown subfield \"" + *sub + "\"; expected CN, O, OU, L, S, C, E "
                           "(or ST, emailAddress, DC, GN, SN, T, I, serialNumber)");
      auto match = r.str("match");
      if (!match) r.fail_at(r.source(), "match", "missing: the value to compare, * for any run of characters");
      rc.match = *match;
      rc.case_sensitive = r.boolean("case_sensitive", true);
      r.finish();
      e.rules.push_back(std::move(rc));
    }
    o.finish();
    m.many_to_one.push_back(std::move(e));
  }
  t.finish();
}

void read_directory(Table& t, DirectoryMapping& d, const fs::path& base) {
  d.enabled = t.boolean("enabled", true);
  if (const toml::node* n = t.node("url"); n && n->is_string()) d.urls = {*t.str("url")};
  else if (auto u = t.strings("url")) d.urls = *u;
  if (d.enabled && d.urls.empty())
    t.fail_at(t.source(), "url", "missing: the LDAP server, e.g. \"ldap://dc1.corp.example:389\"");
  for (const auto& u : d.urls)
    if (!(u.starts_with("ldap://") || u.starts_with("ldaps://")) || u.find(' ') != std::string::npos)
      t.fail("url", "expected ldap://host[:port] or ldaps://host[:port]; got \"" + u + "\"");
  d.bind_dn = t.str("bind_dn", "");
  auto pw = t.str("bind_password");
  auto pw_file = t.str("bind_password_file");
  if (pw && pw_file) t.fail("bind_password_file", "give bind_password or bind_password_file, not both");
  if (pw) d.bind_password = *pw;
  if (pw_file) {
    const fs::path f = resolve(base, *pw_file);
    std::ifstream in(f, std::ios::binary);
    if (!in) t.fail("bind_password_file", "cannot read " + f.string());
    std::getline(in, d.bind_password);
    while (!d.bind_password.empty() && (d.bind_password.back() == '\r' || d.bind_password.back() == '\n'))
      d.bind_password.pop_back();
  }
  if (!d.bind_dn.empty() && d.bind_password.empty())
    t.fail("bind_dn", "a bind DN needs bind_password or bind_password_file (an empty password "
                      "would be an unauthenticated bind)");
  auto base_dn = t.str("base_dn");
  if (d.enabled && (!base_dn || base_dn->empty()))
    t.fail_at(t.source(), "base_dn", "missing: where accounts are searched, e.g. \"DC=corp,DC=example\"");
  d.base_dn = base_dn.value_or("");
  auto filter = [&](const char* key, std::string& out, bool required) {
    auto v = t.str(key);
    if (!v) return;
    if ((required || !v->empty()) && (v->size() < 2 || v->front() != '(' || v->back() != ')'))
      t.fail(key, "an LDAP filter is written in parentheses, e.g. \"(objectClass=user)\"");
    out = *v;
  };
  filter("account_filter", d.account_filter, true);
  d.mapping_attribute = t.str("mapping_attribute", d.mapping_attribute);
  d.user_attribute = t.str("user_attribute", d.user_attribute);
  d.upn_attribute = t.str("upn_attribute", d.upn_attribute);
  d.sid_attribute = t.str("sid_attribute", d.sid_attribute);
  for (const char* key : {"mapping_attribute", "user_attribute", "upn_attribute", "sid_attribute",
                          "group_attribute", "group_name_attribute"}) {
    auto v = t.str(key);
    if (v && v->find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-;.") != std::string::npos)
      t.fail(key, "not an LDAP attribute name: \"" + *v + "\"");
  }
  if (d.mapping_attribute.empty()) t.fail("mapping_attribute", "must not be empty");
  if (d.user_attribute.empty()) t.fail("user_attribute", "must not be empty");
  d.domain = t.str("domain", "");
  if (d.domain.find('\\') != std::string::npos) t.fail("domain", "the NetBIOS domain name alone, without a backslash");
  d.group_attribute = t.str("group_attribute", d.group_attribute);
  d.group_base_dn = t.str("group_base_dn", "");
  filter("group_filter", d.group_filter, false);
  if (!d.group_filter.empty() && d.group_filter.find("{dn}") == std::string::npos)
    t.fail("group_filter", "must contain {dn}, the account's DN, e.g. \"(member={dn})\"");
  if (!d.group_filter.empty() && d.group_base_dn.empty()) d.group_base_dn = d.base_dn;
  d.group_name_attribute = t.str("group_name_attribute", d.group_name_attribute);
  d.allow_weak = t.boolean("allow_weak", false);
  if (auto ca = t.str("ca_file")) d.ca_file = resolve(base, *ca);
  d.connect_timeout_ms = static_cast<std::uint32_t>(t.integer("connect_timeout_ms", 3000, 100, 600000));
  d.timeout_ms = static_cast<std::uint32_t>(t.integer("timeout_ms", 5000, 100, 600000));
  d.pool_size = static_cast<std::uint32_t>(t.integer("pool_size", 4, 1, 64));
  d.max_pending = static_cast<std::uint32_t>(t.integer("max_pending", 1000, 1, 1000000));
  d.cache_seconds = static_cast<std::uint32_t>(t.integer("cache_seconds", 300, 0, 86400));
  d.negative_cache_seconds = static_cast<std::uint32_t>(t.integer("negative_cache_seconds", 60, 0, 86400));
  d.cache_entries = static_cast<std::size_t>(t.integer("cache_entries", 100000, 0, 10000000));
  t.finish();
}

void read_basic(Table& t, Basic& b, const fs::path& base) {
  b.enabled = t.boolean("enabled", false);
  if (auto f = t.str("users_file")) b.users_file = resolve(base, *f);
  b.realm = t.str("realm", "certgate");
  if (b.realm.find('"') != std::string::npos || b.realm.find('\\') != std::string::npos)
    t.fail("realm", "must not contain quotes or backslashes");
  if (b.enabled && b.users_file.empty())
    t.fail_at(t.source(), "users_file", "missing: Basic authentication needs a users file");
  t.finish();
}

// "http://host:port[/prefix]", "https://...", "unix:/path.sock"; "" turns proxying off.
void check_backend(Table& t, const std::string& key, const std::string& v) {
  if (v.empty()) return;
  if (v.rfind("unix:/", 0) == 0) return;
  for (const char* scheme : {"http://", "https://"}) {
    if (v.rfind(scheme, 0) != 0) continue;
    std::string rest = v.substr(std::string(scheme).size());
    std::string authority = rest.substr(0, rest.find('/'));
    if (authority.empty() || authority.find_first_of(" @?#") != std::string::npos)
      t.fail(key, "no host in backend \"" + v + "\"");
    return;
  }
  t.fail(key, "backend must be http://host:port, https://host:port or unix:/path.sock; got \"" + v + "\"");
}

void read_proxy(Table& t, Proxy& p, const fs::path& base) {
  p.connect_timeout_ms = static_cast<std::uint32_t>(t.integer("connect_timeout_ms", p.connect_timeout_ms, 10, 600000));
  p.read_timeout_ms = static_cast<std::uint32_t>(t.integer("read_timeout_ms", p.read_timeout_ms, 10, 3600000));
  p.max_idle = static_cast<std::size_t>(t.integer("max_idle", 16, 0, 10000));
  p.preserve_host = t.boolean("preserve_host", false);
  p.trusted_cas = paths(t, "trusted_cas", base);
  p.verify = t.boolean("verify", true);
  t.finish();
}

void read_forward(Table& t, Forward& f, const fs::path& base) {
  auto header_name = [&](const char* key, const std::string& def) {
    std::string v = t.str(key, def);
    for (unsigned char c : v)
      if (!(std::isalnum(c) || c == '-' || c == '_')) t.fail(key, "not a header name: \"" + v + "\"");
    return v;
  };
  f.user_header = header_name("user_header", f.user_header);
  f.auth_type_header = header_name("auth_type_header", f.auth_type_header);
  f.client_cert = t.choice<std::string>("client_cert", "x-arr-clientcert",
                                        {{"x-arr-clientcert", "x-arr-clientcert"}, {"rfc9440", "rfc9440"},
                                         {"xfcc", "xfcc"}, {"pem", "pem"}, {"none", "none"}});
  // A name that frames or routes the request would let a certificate rewrite it.
  auto certificate_header = [&](const char* key, const std::string& def) {
    std::string v = header_name(key, def);
    std::string folded;
    for (char c : v) folded += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* reserved : {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
                                 "upgrade", "te", "trailer", "expect", "authorization", "cookie"})
      if (folded == reserved) t.fail(key, "\"" + v + "\" cannot carry a certificate");
    return v;
  };
  f.client_cert_header = certificate_header("client_cert_header", f.client_cert_header);
  if (f.client_cert_header.empty()) t.fail("client_cert_header", "must not be empty");
  f.client_cert_chain_header = certificate_header("client_cert_chain_header", f.client_cert_chain_header);
  f.cert_fields = t.boolean("cert_fields", false);
  f.underscores_in_headers = t.boolean("underscores_in_headers", false);
  if (auto a = t.table("assertion")) {
    auto key = a->str("key_file");
    if (!key) a->fail_at(a->source(), "key_file", "missing: a PEM EC P-256 or Ed25519 private key");
    f.assertion.key_file = resolve(base, *key);
    f.assertion.lifetime_seconds = static_cast<std::uint32_t>(a->integer("lifetime_seconds", 60, 1, 86400));
    f.assertion.issuer = a->str("issuer", "certgate");
    f.assertion.audience = a->str("audience", "");
    f.assertion.jwks_path = a->str("jwks_path", f.assertion.jwks_path);
    if (f.assertion.jwks_path.empty() || f.assertion.jwks_path[0] != '/')
      a->fail("jwks_path", "must start with '/'");
    a->finish();
  }
  t.finish();
}

// Whole path segments, as IIS <hiddenSegments> lists them: a name with '/' or one that Windows
// would not keep as a file name (trailing dot or space, ':') could never match a request.
std::optional<std::vector<std::string>> hidden_segments(Table& t) {
  auto names = t.strings("hidden_segments");
  if (!names) return names;
  for (const auto& n : *names) {
    const bool bad = n.empty() || n == "." || n == ".." ||
                     n.find_first_of("/\\:") != std::string::npos || n.back() == '.' || n.back() == ' ';
    if (bad)
      t.fail("hidden_segments", "\"" + n + "\" is not a path segment name (e.g. \"web.config\", "
                                "\"bin\", \"App_Data\"): no '/', '\\' or ':', no trailing dot or space");
  }
  return names;
}

// A header value: visible ASCII and spaces only (no line breaks to inject further headers).
std::optional<std::string> cache_control(Table& t) {
  auto v = t.str("authenticated_cache_control");
  if (!v) return v;
  for (unsigned char c : *v)
    if (c < 0x20 || c > 0x7e)
      t.fail("authenticated_cache_control",
             "must be printable ASCII (a Cache-Control value such as \"private, no-cache\")");
  return v;
}

// [sites.error_pages]: "403.16" = "errors/not-mapped.html", "404" = "errors/404.html".
constexpr std::uintmax_t kMaxErrorPageBytes = 256 * 1024;
std::vector<ErrorPageFile> read_error_pages(Table& t, const fs::path& base, const toml::table& raw, Config& cfg) {
  std::vector<ErrorPageFile> out;
  for (const auto& [k, v] : raw) {
    const std::string key(k.str());
    ErrorPageFile page;
    int status = 0, sub = -1;
    char dot = 0, extra = 0;
    const int n = std::sscanf(key.c_str(), "%3d%c%2d%c", &status, &dot, &sub, &extra);
    const bool ok = (n == 1 && key.size() == 3) ||
                    (n == 3 && dot == '.' && key.find_first_not_of("0123456789.") == std::string::npos);
    if (!ok || status < 400 || status > 599 || (n == 3 && (sub < 0 || sub > 99)))
      t.fail(key, "expected a status such as \"404\" or a status.substatus such as \"403.16\" (400-599)");
    if (v.is_table())  // 403.16 = "…" unquoted is TOML for a table 403 holding a key 16
      t.fail(key, "quote a status.substatus key: \"" + key + ".N\" = \"page.html\"");
    auto file = t.str(key);
    if (!file || file->empty()) t.fail(key, "expected the path of an HTML file");
    page.status = status;
    page.substatus = n == 3 ? sub : -1;
    page.file = resolve(base, *file);
    for (const auto& other : out)
      if (other.status == page.status && other.substatus == page.substatus)
        t.fail(key, "appears twice");
    // As IIS, a missing page does not stop the site: certgate's own page answers instead, and
    // check-config says so.
    std::error_code ec;
    const auto size = fs::file_size(page.file, ec);
    if (ec) {
      cfg.warnings.push_back(t.qualified(key) + ": cannot read " + page.file.string() + " (" + ec.message() +
                             "); certgate's own page answers instead");
      continue;
    }
    if (size > kMaxErrorPageBytes) t.fail(key, page.file.string() + " is larger than 256 KiB");
    std::ifstream in(page.file, std::ios::binary);
    page.body.assign(std::istreambuf_iterator<char>(in), {});
    if (in.bad() || page.body.size() != size) {
      cfg.warnings.push_back(t.qualified(key) + ": cannot read " + page.file.string() +
                             "; certgate's own page answers instead");
      continue;
    }
    out.push_back(std::move(page));
  }
  t.finish();
  return out;
}

Location read_location(Table& t, Config& cfg) {
  Location loc;
  auto path = t.str("path");
  if (!path || path->empty() || (*path)[0] != '/')
    t.fail_at(t.source(), "path", "missing or not starting with '/' (e.g. path = \"/admin\")");
  loc.path = *path;
  while (loc.path.size() > 1 && loc.path.back() == '/') loc.path.pop_back();
  if (t.node("ssl_flags")) loc.ssl_flags = ssl_flags(t, "ssl_flags", cfg);
  loc.anonymous = t.boolean("anonymous");
  loc.require_password = t.boolean("require_password");
  loc.allow_users = t.strings("allow_users");
  loc.deny_users = t.strings("deny_users");
  loc.allow_groups = t.strings("allow_groups");
  loc.deny_groups = t.strings("deny_groups");
  loc.backend = t.str("backend");
  if (loc.backend) check_backend(t, "backend", *loc.backend);
  loc.hidden_segments = hidden_segments(t);
  loc.allow_dot_segments = t.boolean("allow_dot_segments");
  loc.authenticated_cache_control = cache_control(t);
  loc.token_login = t.boolean("token_login");
  t.finish();
  return loc;
}

Site read_site(Table& t, Config& cfg, const fs::path& base, int index) {
  Site s;
  s.line = static_cast<int>(t.source().begin.line);
  auto name = t.str("name");
  if (!name || name->empty()) t.fail_at(t.source(), "name", "missing: every site needs a name");
  s.name = *name;
  s.id = static_cast<int>(t.integer("id", index + 1, 1, 1 << 30));
  s.root = resolve(base, t.str("root", "www"));
  s.default_documents = t.strings("default_documents")
                            .value_or(std::vector<std::string>{"index.html", "iisstart.htm",
                                                               "default.htm"});
  if (t.node("ssl_flags")) s.ssl_flags = ssl_flags(t, "ssl_flags", cfg);
  s.anonymous = t.boolean("anonymous", true);
  if (auto hidden = hidden_segments(t)) s.hidden_segments = std::move(*hidden);
  s.allow_dot_segments = t.boolean("allow_dot_segments", false);
  for (auto& b : t.tables("bindings")) s.bindings.push_back(read_binding(b, base));
  if (s.bindings.empty())
    t.fail_at(t.source(), "bindings", "missing: a site needs at least one [[sites.bindings]]");
  if (auto cc = t.table("client_certificates"))
    read_client_certs(*cc, s.client_certificates, base, cfg);
  if (auto m = t.table("mapping")) read_mapping(*m, s.mapping, cfg.file);
  if (auto d = t.table("directory_mapping")) {
    read_directory(*d, s.directory, base);
    // spec: behaviour.md §3: directory mapping and many-to-one cannot share a site (as in IIS,
    // where the two mappers are exclusive). One-to-one entries are still tried first.
    const bool many = s.mapping.enabled && s.mapping.many_to_one_enabled &&
                      std::any_of(s.mapping.many_to_one.begin(), s.mapping.many_to_one.end(),
                                  [](const ManyToOne& m) { return m.enabled; });
    if (s.directory.enabled && many)
      d->fail_at(d->source(), "enabled",
                 "site \"" + s.name + "\" has both directory mapping and enabled many-to-one "
                 "mappings; IIS allows one or the other: set mapping.many_to_one_enabled = false "
                 "or directory_mapping.enabled = false");
  }
  if (auto b = t.table("basic")) read_basic(*b, s.basic, base);
  if (auto g = t.str("groups_file")) s.groups_file = resolve(base, *g);
  s.backend = t.str("backend", "");
  check_backend(t, "backend", s.backend);
  if (auto p = t.table("proxy")) read_proxy(*p, s.proxy, base);
  if (auto f = t.table("forward")) read_forward(*f, s.forward, base);
  if (auto tl = t.table("token_login")) read_token_login(*tl, s.token_login, base);
  for (auto& l : t.tables("locations")) s.locations.push_back(read_location(l, cfg));
  std::set<std::string> seen;
  for (const auto& l : s.locations)
    if (!seen.insert(lower(l.path)).second)
      t.fail("locations", "location path \"" + l.path + "\" appears twice");
  if (auto log = t.table("log")) read_log(*log, s.log, base);
  if (auto c = cache_control(t)) s.authenticated_cache_control = *c;
  if (auto pages = t.table("error_pages"))
    s.error_pages = read_error_pages(*pages, base, *t.node("error_pages")->as_table(), cfg);
  s.upload_read_ahead_bytes = static_cast<std::uint64_t>(
      t.integer("upload_read_ahead_bytes", 49152, 0, 64 << 20));
  if (auto su = t.table("step_up")) read_step_up(*su, s.step_up, base);
  if (s.log.directory.empty())
    s.log.directory = cfg.server.log_dir / ("W3SVC" + std::to_string(s.id));
  if (s.log.fields.empty()) s.log.fields = default_log_fields();

  bool negotiates = s.ssl_flags.negotiates();
  for (const auto& l : s.locations) negotiates |= l.ssl_flags && l.ssl_flags->negotiates();
  bool two_factor = false;
  for (const auto& l : s.locations) two_factor |= l.require_password.value_or(false);
  if (two_factor && (!(s.mapping.enabled || s.directory.enabled) || s.basic.users_file.empty()))
    t.fail_at(t.source(), "locations",
              "site \"" + s.name + "\" has a location with require_password = true, which needs "
              "certificate mapping ([sites.mapping]) and a Basic users file ([sites.basic] users_file)");
  bool token_locations = false;
  for (const auto& l : s.locations) token_locations |= l.token_login.value_or(false);
  if (token_locations && !s.token_login.enabled)
    t.fail_at(t.source(), "locations",
              "site \"" + s.name + "\" has a location with token_login = true, which needs [sites.token_login]");
  if (s.token_login.enabled && s.client_certificates.trusted_cas.empty())
    t.fail_at(t.source(), "client_certificates.trusted_cas",
              "site \"" + s.name + "\" has [sites.token_login] but trusts no certificate issuer; list the CA files "
              "in trusted_cas");
  if (negotiates && s.client_certificates.trusted_cas.empty())
    t.fail_at(t.source(), "client_certificates.trusted_cas",
              "site \"" + s.name + "\" asks for client certificates (SslNegotiateCert or "
              "SslRequireCert) but trusts no issuer; list the CA files in trusted_cas");
  t.finish();
  return s;
}

void check_bindings(const Config& cfg, const fs::path& file) {
  std::map<std::pair<std::string, std::uint16_t>, bool> scheme;  // endpoint → https
  // endpoint → its PROXY protocol settings: the header comes before the SNI that picks a site
  std::map<std::pair<std::string, std::uint16_t>, const Binding*> proxied;
  std::map<std::tuple<std::string, std::uint16_t, std::string>, std::string> owner;
  std::set<int> ids;
  std::set<std::string> names;
  for (const auto& s : cfg.sites) {
    if (!names.insert(s.name).second)
      throw ConfigError(file.string() + ": sites: two sites are named \"" + s.name + "\"");
    if (!ids.insert(s.id).second)
      throw ConfigError(file.string() + ": sites: two sites have id " + std::to_string(s.id) +
                        " (site \"" + s.name + "\")");
    for (const auto& b : s.bindings) {
      auto ep = std::make_pair(b.address, b.port);
      auto [it, fresh] = scheme.emplace(ep, b.https);
      if (!fresh && it->second != b.https)
        throw ConfigError(file.string() + ": site \"" + s.name + "\": binding " + b.listen +
                          " is used for both http and https");
      auto [p, first] = proxied.emplace(ep, &b);
      if (!first && (p->second->proxy_protocol != b.proxy_protocol ||
                     p->second->proxy_protocol_from != b.proxy_protocol_from))
        throw ConfigError(file.string() + ": site \"" + s.name + "\": binding " + b.listen +
                          ": every binding on one address:port must have the same proxy_protocol "
                          "and proxy_protocol_from");
      auto [o, ok] = owner.emplace(std::make_tuple(b.address, b.port, b.host), s.name);
      if (!ok)
        throw ConfigError(file.string() + ": site \"" + s.name + "\": binding " + b.listen +
                          (b.host.empty() ? "" : " host " + b.host) +
                          " is already used by site \"" + o->second + "\"");
    }
  }
}

}  // namespace

std::vector<std::string> default_hidden_segments() {
  return {"web.config", "bin", "App_code", "App_GlobalResources", "App_LocalResources",
          "App_WebReferences", "App_Data", "App_Browsers"};
}

std::vector<std::string> default_log_fields() {
  return {"date", "time", "s-ip", "cs-method", "cs-uri-stem", "cs-uri-query", "s-port",
          "cs-username", "c-ip", "cs(User-Agent)", "cs(Referer)", "sc-status", "sc-substatus",
          "sc-win32-status", "time-taken"};
}

Config load(const fs::path& file) {
  Config cfg;
  cfg.file = file;
  toml::table root;
  try {
    root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw ConfigError(file.string() + ":" + std::to_string(b.line) + ":" +
                      std::to_string(b.column) + ": " + std::string(e.description()));
  }
  const fs::path base = fs::absolute(file).parent_path();
  cfg.base = base;
  Table top(root, "", file);
  if (auto server = top.table("server")) read_server(*server, cfg, base);
  else cfg.server.log_dir = resolve(base, "logs");
  int index = 0;
  for (auto& s : top.tables("sites")) cfg.sites.push_back(read_site(s, cfg, base, index++));
  if (cfg.sites.empty())
    throw ConfigError(file.string() + ":1:1: sites: no site configured (add a [[sites]] table)");
  top.finish();
  check_bindings(cfg, file);
  {
    std::ifstream in(file, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), md);
    cfg.digest.assign(reinterpret_cast<const char*>(md), 8);
  }
  return cfg;
}

}  // namespace certgate::config
