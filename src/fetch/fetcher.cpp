#include "fetch/fetcher.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace certgate::fetch {
namespace {

// libcurl as the fetcher needs it: initialised once, with an asynchronous resolver (one name
// whose lookup hangs must not stall every fetch on the store's thread) and CURLOPT_QUICK_EXIT
// (7.87: a fetch that timed out during its lookup must not wait for the lookup thread).
void global_init() {
  static const std::string problem = []() -> std::string {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return "libcurl could not be initialised";
    const curl_version_info_data* v = curl_version_info(CURLVERSION_NOW);
    if (!(v->features & CURL_VERSION_ASYNCHDNS))
      return std::string("libcurl ") + v->version + " resolves names synchronously (no AsynchDNS): one slow "
             "DNS answer would stall every revocation fetch; install a libcurl with the threaded resolver";
    if (v->version_num < 0x075700)
      return std::string("libcurl ") + v->version + " is older than 7.87 (CURLOPT_QUICK_EXIT)";
    return "";
  }();
  if (!problem.empty()) throw std::runtime_error(problem);
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string env(std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (const char* v = std::getenv(n); v && *v) return v;
  return "";
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s + ",") {
    if (c == ',' || c == ' ' || c == '\t') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

// An address (v4 or v6, brackets stripped) as bytes; false when `text` is a name.
bool address_bytes(std::string text, std::vector<unsigned char>& out) {
  if (text.size() > 1 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  unsigned char buf[16];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) {
    out.assign(buf, buf + 4);
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
    out.assign(buf, buf + 16);
    return true;
  }
  return false;
}

// scheme, host of a URL (libcurl's parser); false when it has userinfo, no host, or a host
// that is not one name or address (a percent-encoded list of servers to libldap, say).
bool url_parts(const std::string& url, std::string& scheme, std::string& host, std::string* port = nullptr) {
  CURLU* u = curl_url();
  if (!u) return false;
  bool ok = curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK;
  char *s = nullptr, *h = nullptr, *user = nullptr, *password = nullptr;
  ok = ok && curl_url_get(u, CURLUPART_SCHEME, &s, 0) == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK;
  const bool has_user = curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
                        curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK;
  if (ok) {
    scheme = lower(s);
    host = h;
  }
  char* p = nullptr;
  if (ok && port && curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK) *port = p;
  curl_free(p);
  curl_free(s);
  curl_free(h);
  curl_free(user);
  curl_free(password);
  curl_url_cleanup(u);
  if (!ok || has_user || host.empty()) return false;
  const bool bracketed = host.front() == '[' && host.back() == ']';
  static constexpr std::string_view kName = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_";
  for (std::size_t i = bracketed ? 1 : 0; i < host.size() - (bracketed ? 1 : 0); ++i)
    if (kName.find(host[i]) == std::string_view::npos && !(bracketed && host[i] == ':')) return false;
  return true;
}

// `proxy` as it may be shown (routes, `verify --urlfetch`, the fetch log): its user and password
// left out. Unparsable, it is shown as "(unparsable proxy URL)" rather than risk the secret.
std::string shown_proxy(const std::string& proxy) {
  CURLU* u = curl_url();
  std::string out = "(unparsable proxy URL)";
  if (u && curl_url_set(u, CURLUPART_URL, proxy.c_str(), CURLU_GUESS_SCHEME) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_USER, nullptr, 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_PASSWORD, nullptr, 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_OPTIONS, nullptr, 0) == CURLUE_OK) {
    char* text = nullptr;
    if (curl_url_get(u, CURLUPART_URL, &text, 0) == CURLUE_OK) out = text;
    curl_free(text);
  }
  curl_url_cleanup(u);
  // curl_url_get adds a "/" path to a bare host:port; the proxy is reported as configured.
  if (out.ends_with("/") && !proxy.ends_with("/")) out.pop_back();
  return out;
}

std::string percent_decoded(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto hex = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    };
    if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out += static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

// Attribute names as directories spell them (without ";binary"), for what is wanted.
const std::vector<std::string_view>& attribute_names(LdapValue want) {
  static const std::vector<std::string_view> crl{"certificaterevocationlist", "authorityrevocationlist",
                                                 "deltarevocationlist"};
  static const std::vector<std::string_view> cert{"cacertificate"};
  return want == LdapValue::Crl ? crl : cert;
}

bool simple_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '-'; });
}

}  // namespace

std::string bound_search_problem(std::string_view url, LdapValue want) {
  // ldap://host/dn?attributes?scope?filter?extensions (RFC 4516)
  const std::string why =
      " (read with the directory bind, an ldap URL must be what AD CS writes: a base search of the "
      "value's attribute, filtered on objectClass at most)";
  const std::size_t authority = url.find("://");
  // The DN's '/' right after the host: "ldap://dc1?attrs?sub/…" would be read one way here
  // and another by libldap (no DN, then the attributes).
  const std::size_t path = authority == std::string_view::npos ? authority : url.find_first_of("/?#", authority + 3);
  if (path == std::string_view::npos || url[path] != '/') return "an ldap URL without a DN after its host" + why;
  std::vector<std::string_view> parts;
  for (std::string_view rest = url.substr(path);;) {
    const std::size_t q = rest.find('?');
    parts.push_back(rest.substr(0, q));
    if (q == std::string_view::npos) break;
    rest.remove_prefix(q + 1);
  }
  // libcurl would take what follows a '#' for a fragment, where libldap reads on: the two must not
  // see different searches.
  if (url.find('#') != std::string_view::npos) return "an ldap URL with '#'" + why;
  if (parts.size() > 4) return "an ldap URL with extensions" + why;
  const std::string attrs = parts.size() > 1 ? percent_decoded(parts[1]) : "";
  if (attrs.empty()) return "an ldap URL naming no attribute" + why;
  for (std::size_t from = 0; from <= attrs.size();) {
    std::size_t comma = attrs.find(',', from);
    if (comma == std::string::npos) comma = attrs.size();
    std::string name = lower(attrs.substr(from, comma - from));
    if (name.ends_with(";binary")) name.resize(name.size() - 7);
    const auto& wanted = attribute_names(want);
    if (std::find(wanted.begin(), wanted.end(), name) == wanted.end())
      return "an ldap URL asking for attribute '" + attrs.substr(from, comma - from) + "'" + why;
    from = comma + 1;
  }
  const std::string scope = lower(parts.size() > 2 ? percent_decoded(parts[2]) : "");
  if (!scope.empty() && scope != "base") return "an ldap URL with scope '" + scope + "'" + why;
  std::string filter = parts.size() > 3 ? percent_decoded(parts[3]) : "";
  if (filter.size() >= 2 && filter.front() == '(' && filter.back() == ')') filter = filter.substr(1, filter.size() - 2);
  if (!filter.empty() && !(lower(filter).starts_with("objectclass=") && simple_name(filter.substr(12))))
    return "an ldap URL with filter '" + filter + "'" + why;
  return "";
}

namespace {

std::string base64_decode(std::string_view in, bool& ok) {
  std::string clean;
  clean.reserve(in.size());
  for (char c : in)
    if (c != '\r' && c != '\n' && c != ' ') clean += c;
  ok = clean.size() % 4 == 0;
  if (!ok) return "";
  std::string out(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  ok = n >= 0;
  if (!ok) return "";
  std::size_t pad = 0;
  for (std::size_t i = clean.size(); i > 0 && clean[i - 1] == '=' && pad < 2; --i) ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

}  // namespace

bool no_proxy_matches(const std::vector<std::string>& no_proxy, std::string_view host_in) {
  std::string host = lower(host_in);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::vector<unsigned char> addr;
  const bool is_addr = address_bytes(host, addr);
  for (const auto& raw : no_proxy) {
    std::string e = lower(raw);
    if (e == "*") return true;
    if (!e.empty() && e.front() == '.') e.erase(0, 1);
    if (e.empty()) continue;
    if (const auto slash = e.find('/'); slash != std::string::npos) {
      std::vector<unsigned char> net;
      const std::string bits_text = e.substr(slash + 1);
      if (!is_addr || !address_bytes(e.substr(0, slash), net) || net.size() != addr.size() || bits_text.empty() ||
          bits_text.size() > 3 || bits_text.find_first_not_of("0123456789") != std::string::npos)
        continue;
      const std::size_t bits = std::stoul(bits_text);
      if (bits > net.size() * 8) continue;
      bool same = true;
      for (std::size_t i = 0; i < bits && same; ++i)
        same = ((net[i / 8] ^ addr[i / 8]) & (0x80 >> (i % 8))) == 0;
      if (same) return true;
      continue;
    }
    std::vector<unsigned char> entry_addr;
    if (is_addr && address_bytes(e, entry_addr)) {
      if (entry_addr == addr) return true;
      continue;
    }
    if (host == e || (host.size() > e.size() && host.ends_with(e) && host[host.size() - e.size() - 1] == '.'))
      return true;
  }
  return false;
}

bool ldap_value(std::string_view ldif, LdapValue want, std::size_t max_bytes, std::string& out, std::string& error) {
  const auto& names = attribute_names(want);
  bool entry = false;
  std::size_t pos = 0;
  while (pos < ldif.size()) {
    std::size_t end = ldif.find('\n', pos);
    if (end == std::string_view::npos) end = ldif.size();
    std::string_view line = ldif.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.starts_with("DN: ")) {
      entry = true;
      continue;
    }
    if (!line.starts_with("\t")) continue;
    line.remove_prefix(1);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name = lower(line.substr(0, colon));
    if (const auto semi = name.find(';'); semi != std::string::npos) name.resize(semi);
    if (std::find(names.begin(), names.end(), name) == names.end()) continue;
    const bool b64 = colon + 1 < line.size() && line[colon + 1] == ':';
    std::string_view value = line.substr(colon + (b64 ? 2 : 1));
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (b64) {
      if (value.size() / 4 * 3 > max_bytes + 2) {
        error = "answer larger than " + std::to_string(max_bytes) + " bytes";
        return false;
      }
      bool ok = false;
      out = base64_decode(value, ok);
      if (!ok) {
        error = "the directory's value of " + std::string(line.substr(0, colon)) + " is not valid base64";
        return false;
      }
    } else {
      out.assign(value);
    }
    if (out.size() > max_bytes) {
      error = "answer larger than " + std::to_string(max_bytes) + " bytes";
      return false;
    }
    return true;
  }
  error = entry ? (want == LdapValue::Crl ? "the entry has no CRL attribute" : "the entry has no cACertificate attribute")
                : "no such entry";
  return false;
}

struct Fetcher::Impl {
  const runtime::Clock& clock;
  std::vector<std::string> ldap_hosts;
  std::string bind_dn, password;
  std::string proxy_http, proxy_https;  // "" = none
  std::vector<std::string> no_proxy;
  std::string no_proxy_text;
  CURLM* multi = nullptr;
  // Finished, their callbacks not run yet: run from drain(), never from inside start().
  std::vector<std::pair<std::function<void(Result)>, Result>> immediate;

  struct Transfer {
    Request req;
    std::function<void(Result)> done;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    char errbuf[CURL_ERROR_SIZE] = {};
    std::string body;
    std::size_t cap = 0;  // bytes accepted from the wire
    bool over = false;
    bool ldap = false;
    std::vector<std::string> candidates;  // URLs to try, in order (the directory hosts of a host-less URL)
    std::size_t next = 0;
    std::string ldap_host;                // the one being tried
    std::vector<std::string> failures;
    std::int64_t started_ms = 0;
    Impl* owner = nullptr;
    std::string relay_error;  // the directory's connection failed (LDAP: see Relay)
    int relay_refused_family = 0;  // AF_INET/AF_INET6 of the address whose connection failed
    long ip_resolve = CURL_IPRESOLVE_WHATEVER;
    bool family_retried = false;
  };
  std::unordered_set<Transfer*> live;  // started and not finished (freed with the Fetcher)

  // liblber (under libcurl's LDAP) reads each whole message into a buffer of the length the peer
  // announces before libcurl sees a byte of it, and libcurl offers no hold on that connection's
  // Sockbuf (LBER_SB_OPT_SET_MAX_INCOMING): a directory at a URL any chain names could make it
  // allocate gigabytes. So libcurl's LDAP connections go to a relay of this thread's, which
  // passes the bytes to and from the directory and cuts both connections once the directory has
  // sent more than the cap. Nonblocking both ways; two buffers of 64 KiB at most per fetch.
  struct Relay {
    int outer = -1;  // to the directory
    int inner = -1;  // libcurl's connection, as accepted on the relay's listener
    bool accepted = false, connected = false, outer_eof = false, inner_eof = false, outer_shut = false, inner_shut = false;
    std::string up, down;  // waiting: to the directory, to libcurl
    std::size_t received = 0;
    Transfer* t = nullptr;
    std::string peer;      // address:port, for errors
    in_port_t curl_port = 0;  // libcurl's local port (network order): how its connection is recognised
    int family = 0;           // of the directory's address
  };
  std::unordered_map<curl_socket_t, Relay> relays;  // by libcurl's end

  Impl(const config::FetchSettings& s, const runtime::Clock& c)
      : clock(c), ldap_hosts(s.ldap_hosts), bind_dn(s.ldap_bind_dn), password(s.ldap_password) {
    global_init();
    if (s.proxy) {
      proxy_http = proxy_https = *s.proxy;
    } else {
      proxy_http = env({"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"});
      proxy_https = env({"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"});
    }
    no_proxy = s.no_proxy ? *s.no_proxy : split_list(env({"no_proxy", "NO_PROXY"}));
    no_proxy_text = join(no_proxy);
    multi = curl_multi_init();
    if (!multi) throw std::runtime_error("libcurl: cannot create a multi handle");
  }

  ~Impl() {
    for (auto& [fd, r] : relays) cut(r);
    if (listener >= 0) ::close(listener);
    for (Transfer* t : live) {
      if (t->easy) curl_multi_remove_handle(multi, t->easy);
      release(t);
    }
    curl_multi_cleanup(multi);
  }

  static void release(Transfer* t) {
    if (!t) return;
    if (t->easy) curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    delete t;
  }

  static std::size_t on_data(char* data, std::size_t size, std::size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const std::size_t len = size * n;
    // Content-Length may be absent (chunked, or an LDAP answer): the cap holds as bytes arrive.
    if (t->body.size() + len > t->cap) {
      t->over = true;
      return 0;
    }
    // No exception may cross libcurl's C frames: out of memory ends this transfer only.
    try {
      t->body.append(data, len);
    } catch (const std::exception&) {
      return 0;
    }
    return len;
  }


  static void cut(Relay& r) {
    if (r.outer >= 0) ::close(r.outer);
    if (r.inner >= 0) ::close(r.inner);
    r.outer = r.inner = -1;
  }

  // The relay's listener on 127.0.0.1 (made when first needed): libcurl's LDAP connections are
  // pointed at it, and each accepted connection is matched to its relay by libcurl's local port.
  // (A socket pair handed over with CURL_SOCKOPT_ALREADY_CONNECTED would be simpler, but
  // libcurl 7.88 connect()s it anyway.)
  int listener = -1;
  sockaddr_in listener_addr{};

  bool ensure_listener() {
    if (listener >= 0) return true;
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) return false;
    listener_addr.sin_family = AF_INET;
    listener_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof listener_addr;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&listener_addr), len) != 0 || ::listen(listener, 128) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&listener_addr), &len) != 0) {
      ::close(listener);
      listener = -1;
      return false;
    }
    return true;
  }

  // No exception may cross libcurl's C frames: out of memory fails this connection only.
  static curl_socket_t open_socket(void* data, curlsocktype purpose, curl_sockaddr* a) noexcept {
    try {
      return open_relayed(data, purpose, a);
    } catch (const std::exception&) {
      return CURL_SOCKET_BAD;
    }
  }

  static curl_socket_t open_relayed(void* data, curlsocktype purpose, curl_sockaddr* a) {
    auto* t = static_cast<Transfer*>(data);
    Impl* self = t->owner;
    if (purpose != CURLSOCKTYPE_IPCXN || !self->ensure_listener()) return CURL_SOCKET_BAD;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (a->family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&a->addr);
      inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      port = ntohs(in->sin_port);
    } else if (a->family == AF_INET6) {
      const auto* in = reinterpret_cast<const sockaddr_in6*>(&a->addr);
      inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
      port = ntohs(in->sin6_port);
    }
    const std::string peer = std::string(host) + ":" + std::to_string(port);
    const int outer_family = a->family;
    const int outer = ::socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, a->protocol);
    if (outer < 0) return CURL_SOCKET_BAD;
    if (::connect(outer, &a->addr, a->addrlen) != 0 && errno != EINPROGRESS) {
      const int err = errno;
      t->relay_error = "cannot connect to " + peer + ": " + std::strerror(err);
      ::close(outer);
      return CURL_SOCKET_BAD;
    }
    const int mine = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof local;
    if (mine < 0 || ::bind(mine, reinterpret_cast<sockaddr*>(&local), len) != 0 ||
        ::getsockname(mine, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
      if (mine >= 0) ::close(mine);
      ::close(outer);
      return CURL_SOCKET_BAD;
    }
    // libcurl connects where the callback leaves the address (documented): the relay.
    a->family = AF_INET;
    a->addrlen = sizeof(sockaddr_in);
    std::memcpy(&a->addr, &self->listener_addr, sizeof(sockaddr_in));
    Relay& r = self->relays[mine];
    r = Relay{};
    r.outer = outer;
    r.curl_port = local.sin_port;
    r.family = outer_family;
    r.t = t;
    r.peer = peer;
    return mine;
  }

  static int close_socket(void* data, curl_socket_t fd) {
    auto* self = static_cast<Impl*>(data);
    if (auto it = self->relays.find(fd); it != self->relays.end()) {
      cut(it->second);
      self->relays.erase(it);
    }
    return ::close(fd);
  }

  void accept_relays() {
    for (;;) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const int c = ::accept4(listener, reinterpret_cast<sockaddr*>(&from), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) return;
      Relay* match = nullptr;
      // libcurl's socket holds 127.0.0.1:curl_port (bound without SO_REUSEADDR), so no other
      // socket can connect from that address and port; the port alone would also match a local
      // process connecting from 127.0.0.2 (any 127/8 address is the host's) and taking
      // libcurl's place.
      if (from.sin_addr.s_addr == htonl(INADDR_LOOPBACK))
        for (auto& [fd, r] : relays)
          if (r.inner < 0 && !r.accepted && r.curl_port == from.sin_port) match = &r;
      // Not one of ours, or its directory connection already failed: closed, so libcurl sees
      // the end at once.
      if (match) match->accepted = true;
      if (match && match->outer >= 0) match->inner = c;
      else ::close(c);
    }
  }

  void pump(Relay& r) {
    if (r.outer < 0) return;
    if (!r.connected) {
      pollfd p{r.outer, POLLOUT, 0};
      if (::poll(&p, 1, 0) <= 0) return;
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(r.outer, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        if (r.t) {
          r.t->relay_error = "cannot connect to " + r.peer + ": " + std::strerror(err);
          r.t->relay_refused_family = r.family;
        }
        return cut(r);
      }
      r.connected = true;
    }
    if (r.inner < 0) return;  // libcurl's connection not accepted yet
    if (!flow(r, r.inner, r.outer, r.up, r.inner_eof, r.outer_shut, false) ||
        !flow(r, r.outer, r.inner, r.down, r.outer_eof, r.inner_shut, true))
      return cut(r);
  }

  // One direction of a relay: what `from` has (at most 64 KiB waiting) goes on to `to`, and `to`
  // is half-closed once `from` ended and all of it went. `counted`: the directory's side, whose
  // bytes count against the transfer's cap (a message's framing beyond its value). False: cut.
  static bool flow(Relay& r, int from, int to, std::string& waiting, bool& from_eof, bool& to_shut, bool counted) {
    char buf[16384];
    while (!from_eof && waiting.size() < 65536) {
      const ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n > 0) {
        if (counted) {
          r.received += static_cast<std::size_t>(n);
          if (r.t && r.received > r.t->req.max_bytes + 65536) {
            r.t->over = true;
            return false;
          }
        }
        waiting.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        from_eof = true;
      } else {
        break;
      }
    }
    if (!waiting.empty()) {
      const ssize_t n = ::send(to, waiting.data(), waiting.size(), MSG_NOSIGNAL);
      if (n > 0) waiting.erase(0, static_cast<std::size_t>(n));
      else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    }
    if (from_eof && waiting.empty() && !to_shut) {
      ::shutdown(to, SHUT_WR);
      to_shut = true;
    }
    return true;
  }

  void pump_relays() {
    if (relays.empty()) return;
    accept_relays();
    for (auto& [fd, r] : relays) pump(r);
  }

  // What the relays wait for, for curl_multi_poll.
  std::vector<curl_waitfd> relay_fds() const {
    std::vector<curl_waitfd> out;
    if (!relays.empty()) out.push_back({listener, CURL_WAIT_POLLIN, 0});
    for (const auto& [fd, r] : relays) {
      if (r.outer < 0) continue;
      if (r.inner >= 0)
        out.push_back({r.inner, static_cast<short>(CURL_WAIT_POLLIN | (r.down.empty() ? 0 : CURL_WAIT_POLLOUT)), 0});
      out.push_back({r.outer, static_cast<short>(CURL_WAIT_POLLIN | (!r.connected || !r.up.empty() ? CURL_WAIT_POLLOUT : 0)), 0});
    }
    return out;
  }

  const std::string& proxy_for(const std::string& scheme) const { return scheme == "https" ? proxy_https : proxy_http; }

  std::string route_of(const std::string& url) const {
    std::string scheme, host;
    if (!url_parts(url, scheme, host)) return "direct";
    if (scheme.starts_with("ldap")) return "direct";
    const std::string& p = proxy_for(scheme);
    return p.empty() || no_proxy_matches(no_proxy, host) ? "direct" : "via proxy " + shown_proxy(p);
  }

  void fail_now(Request& req, std::function<void(Result)>& done, std::string error) {
    Result r;
    r.final_url = req.url;
    r.route = "none (not started)";
    r.error = std::move(error);
    immediate.emplace_back(std::move(done), std::move(r));
  }

  void start(Request req, std::function<void(Result)> done) {
    auto t = std::make_unique<Transfer>();
    t->owner = this;
    t->started_ms = clock.steady_ms();
    if (req.url.starts_with("ldap:///")) {
      if (ldap_hosts.empty())
        return fail_now(req, done, "a host-less ldap:/// URL needs [server.fetch] ldap_hosts");
      for (const auto& h : ldap_hosts) t->candidates.push_back(h + req.url.substr(7));
    } else {
      t->candidates.push_back(req.url);
    }
    std::string scheme, host;
    for (const auto& c : t->candidates) {
      if (!url_parts(c, scheme, host)) return fail_now(req, done, "not a URL naming one host: " + c);
      if (scheme != "http" && scheme != "https" && scheme != "ldap" && scheme != "ldaps")
        return fail_now(req, done, "not an http, https, ldap or ldaps URL: " + c);
    }
    t->ldap = scheme.starts_with("ldap");
    if (t->ldap && req.method != "GET") return fail_now(req, done, "an OCSP request goes over http(s) only");
    // The configured directories are searched as the bind account: what a certificate's URL
    // may ask of them is what AD CS writes, not a subtree search of every user's attributes.
    const bool hostless = req.url.starts_with("ldap:///");
    for (const auto& c : t->candidates)
      if (hostless || is_ldap_host(c))
        if (std::string why = bound_search_problem(c, req.ldap_value); !why.empty())
          return fail_now(req, done, std::move(why));
    // LDAP answers arrive as text, binary values in base64 (4 bytes for 3) plus names and framing.
    t->cap = t->ldap ? req.max_bytes / 3 * 4 + 65536 : req.max_bytes;
    t->req = std::move(req);
    t->done = std::move(done);
    Transfer* raw = t.release();
    live.insert(raw);
    if (!attempt(raw)) finish(raw);
  }

  // Whether `url` names one of ldap_hosts (scheme, host and port; default ports filled in).
  bool is_ldap_host(const std::string& url) const {
    std::string scheme, host, port;
    if (!url_parts(url, scheme, host, &port)) return false;
    for (const auto& h : ldap_hosts) {
      std::string hs, hh, hp;
      if (url_parts(h, hs, hh, &hp) && hs == scheme && lower(hh) == lower(host) && hp == port) return true;
    }
    return false;
  }

  // Starts the next candidate URL under what is left of the deadline; false when none is left.
  // `other_family`: the same URL again, on the address family its relay could not reach.
  bool attempt(Transfer* t, bool other_family = false) {
    const std::int64_t left = t->req.timeout_ms - (clock.steady_ms() - t->started_ms);
    if ((!other_family && t->next >= t->candidates.size()) || left <= 0) return false;
    if (!other_family) {
      ++t->next;
      t->ip_resolve = CURL_IPRESOLVE_WHATEVER;
      t->family_retried = false;
    }
    const std::string& url = t->candidates[t->next - 1];
    const bool hostless = t->req.url.starts_with("ldap:///");
    t->ldap_host = hostless ? ldap_hosts[t->next - 1] : "";
    t->body.clear();
    t->over = false;
    t->relay_error.clear();
    t->relay_refused_family = 0;
    t->errbuf[0] = '\0';
    if (t->easy) curl_easy_reset(t->easy);
    else t->easy = curl_easy_init();
    if (!t->easy) {
      t->failures.push_back("libcurl: cannot create a transfer");
      return false;
    }
    CURL* e = t->easy;
    std::string scheme, host;
    url_parts(url, scheme, host);
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_IPRESOLVE, t->ip_resolve);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    // A transfer ended while its host name is still being looked up must not wait for the
    // lookup thread (libcurl would join it): it is left to finish on its own.
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,ldap,ldaps");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, static_cast<long>(t->req.max_redirects));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(left));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(left));
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(t->cap));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "certgate");
    // No Accept-Encoding is sent and nothing is decompressed: the cap is on what arrives.
    curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    // The proxy decided here (configuration, else environment) is the one reported: libcurl is
    // told exactly, so that it reads no variable of its own.
    curl_easy_setopt(e, CURLOPT_PROXY, t->ldap ? "" : proxy_for(scheme).c_str());
    curl_easy_setopt(e, CURLOPT_NOPROXY, no_proxy_text.c_str());
    if (t->ldap) {
      curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &Impl::open_socket);
      curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
      curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &Impl::close_socket);
      curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);
    }
    // A connection is used for one fetch: none stays open to a server a certificate named.
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    // The bind goes to the configured directory hosts only: never to one a certificate names.
    if (!bind_dn.empty() && (hostless || is_ldap_host(url))) {
      curl_easy_setopt(e, CURLOPT_USERNAME, bind_dn.c_str());
      curl_easy_setopt(e, CURLOPT_PASSWORD, password.c_str());
    }
    if (t->req.method == "POST") {
      curl_slist_free_all(t->headers);
      t->headers = curl_slist_append(nullptr, ("Content-Type: " + t->req.content_type).c_str());
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->req.body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->req.body.data());
    }
    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
      t->failures.push_back("libcurl: cannot start the transfer");
      return false;
    }
    return true;
  }

  std::string error_of(Transfer* t, CURLcode rc) const {
    const std::string detail = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
    long os_errno = 0;
    curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno);
    const std::string why = os_errno ? std::strerror(static_cast<int>(os_errno)) : detail;
    char* at = nullptr;
    curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &at);
    std::string scheme, host, port;
    if (at) url_parts(at, scheme, host, &port);
    if (!t->relay_error.empty()) return t->relay_error;
    if (t->over || rc == CURLE_FILESIZE_EXCEEDED)
      return "answer larger than " + std::to_string(t->req.max_bytes) + " bytes";
    if (rc == CURLE_OPERATION_TIMEDOUT)
      return "timed out after " + std::to_string(t->req.timeout_ms) + " ms (" + detail + ")";
    if (rc == CURLE_TOO_MANY_REDIRECTS) return "more than " + std::to_string(t->req.max_redirects) + " redirects";
    if (rc == CURLE_LOGIN_DENIED || rc == CURLE_LDAP_CANNOT_BIND)
      return "the bind as '" + bind_dn + "' was refused (" + detail + ")";
    if (rc == CURLE_COULDNT_RESOLVE_HOST) return "cannot resolve " + host + " (" + detail + ")";
    if (rc == CURLE_COULDNT_CONNECT) {
      // Through a proxy, the connection that failed was the proxy's (its refusals to reach the
      // server come back as an HTTP status).
      std::string started_scheme, started_host;  // CURLOPT_PROXY was chosen by the URL started
      url_parts(t->candidates[t->next - 1], started_scheme, started_host);
      const std::string proxy = t->ldap ? "" : proxy_for(started_scheme);
      if (!proxy.empty() && !no_proxy_matches(no_proxy, host))
        return "cannot connect to the proxy " + shown_proxy(proxy) + ": " + why;
      return "cannot connect to " + host + ":" + port + ": " + why;
    }
    if (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION)
      return "TLS handshake with " + host + " failed: " + detail;
    return os_errno && detail.find(why) == std::string::npos ? detail + " (" + why + ")" : detail;
  }

  // A transfer ended: its answer, or the next directory host, or its failure.
  void done(Transfer* t, CURLcode rc) {
    curl_multi_remove_handle(multi, t->easy);
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    std::string error;
    if (rc != CURLE_OK) {
      error = error_of(t, rc);
    } else if (t->ldap) {
      std::string value;
      if (ldap_value(t->body, t->req.ldap_value, t->req.max_bytes, value, error)) t->body = std::move(value);
    } else if (status != 200) {
      error = "HTTP status " + std::to_string(status);
    }
    if (error.empty()) return finish(t, static_cast<int>(status), true);
    // libcurl's words may quote the server (an LDAP result's diagnosticMessage, an attribute's
    // name): any chain's AIA server could write CR, LF or escape sequences into the log line and
    // the terminal of whoever reads the error.
    for (char& c : error)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    t->failures.push_back(t->ldap_host.empty() ? error : t->ldap_host + ": " + error);
    // libcurl took the relay's connection for the directory's, so it cannot fall back to the
    // name's other addresses itself when the directory's connection fails later: once, the
    // other address family is tried here.
    if (t->relay_refused_family != 0 && !t->family_retried) {
      t->family_retried = true;
      t->ip_resolve = t->relay_refused_family == AF_INET6 ? CURL_IPRESOLVE_V4 : CURL_IPRESOLVE_V6;
      if (attempt(t, true)) return;
    }
    if (!t->ldap_host.empty() && attempt(t)) return;  // the next directory host
    finish(t, static_cast<int>(status), false);
  }

  // `ok`: the last attempt brought the answer (an earlier directory host may have failed).
  void finish(Transfer* t, int status = 0, bool ok = false) {
    Result r;
    r.status = status;
    if (ok) {
      r.ok = true;
      r.body = std::move(t->body);
    } else {
      for (const auto& f : t->failures) r.error += (r.error.empty() ? "" : "; ") + f;
      if (r.error.empty()) r.error = "timed out after " + std::to_string(t->req.timeout_ms) + " ms";
    }
    char* effective = nullptr;
    if (t->easy) curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &effective);
    r.final_url = effective ? effective : t->req.url;
    r.route = !t->ldap_host.empty() ? "via ldap host " + t->ldap_host : route_of(r.final_url);
    r.elapsed_ms = clock.steady_ms() - t->started_ms;
    immediate.emplace_back(std::move(t->done), std::move(r));
    for (auto& [fd, relay] : relays)
      if (relay.t == t) relay.t = nullptr;
    live.erase(t);
    release(t);
  }

  void drain() {
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      CURL* easy = m->easy_handle;
      const CURLcode rc = m->data.result;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
      done(t, rc);
    }
    // A callback that throws (out of memory) must not lose the others' results: each holds a
    // fetch slot of the store until it runs. The first exception is passed on afterwards.
    std::exception_ptr failed;
    while (!immediate.empty()) {
      auto now = std::move(immediate);
      immediate.clear();
      for (auto& [cb, r] : now) {
        try {
          cb(std::move(r));
        } catch (...) {
          if (!failed) failed = std::current_exception();
        }
      }
    }
    if (failed) std::rethrow_exception(failed);
  }
};

Fetcher::Fetcher(const config::FetchSettings& settings, const runtime::Clock& clock)
    : impl_(std::make_unique<Impl>(settings, clock)) {}

Fetcher::~Fetcher() = default;

void Fetcher::start(Request req, std::function<void(Result)> done) { impl_->start(std::move(req), std::move(done)); }

void Fetcher::run_once(int max_wait_ms) {
  impl_->pump_relays();
  impl_->drain();
  auto fds = impl_->relay_fds();
  curl_multi_poll(impl_->multi, fds.data(), static_cast<unsigned>(fds.size()), max_wait_ms, nullptr);
  impl_->pump_relays();
  impl_->drain();
  impl_->pump_relays();
}

void Fetcher::wake() { curl_multi_wakeup(impl_->multi); }

}  // namespace certgate::fetch
