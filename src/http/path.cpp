#include "http/path.hpp"

#include <cctype>
#include <vector>

namespace certgate::http {
namespace {
int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool istarts_with(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (lower(s[i]) != prefix[i]) return false;
  return true;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'z'); }

// RFC 3986 pchar without ';' (a path parameter delimiter to Tomcat and Jetty), which is
// therefore always sent encoded.
bool raw_in_segment(char c) {
  if (is_alnum(c)) return true;
  switch (c) {
    case '-': case '.': case '_': case '~': case '!': case '$': case '&': case '\'':
    case '(': case ')': case '*': case '+': case ',': case '=': case ':': case '@':
      return true;
    default:
      return false;
  }
}

// A segment that a backend would read as another path than the one the policy matched.
bool ambiguous_segment(std::string_view seg) {
  std::string_view base = seg.substr(0, seg.find(';'));  // what Tomcat/Jetty keep of it
  if (base == "." || base == "..") return true;
  for (std::string_view s : {seg, base})
    if (!s.empty() && (s.back() == '.' || s.back() == ' ')) return true;  // Windows strips them
  for (std::size_t i = 0; i + 2 < seg.size(); ++i)
    if (seg[i] == '%' && hexval(seg[i + 1]) >= 0 && hexval(seg[i + 2]) >= 0) return true;
  return false;
}
}  // namespace

std::optional<NormalizedTarget> normalize_target(std::string_view target) {
  if (target.empty() || target[0] != '/') return std::nullopt;
  if (target.find('#') != std::string_view::npos) return std::nullopt;
  NormalizedTarget out;
  auto q = target.find('?');
  std::string_view raw = target.substr(0, q);
  if (q != std::string_view::npos) {
    out.query = std::string(target.substr(q + 1));
    out.has_query = true;
  }

  std::string decoded;
  decoded.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '%') {
      if (i + 2 >= raw.size()) return std::nullopt;
      int hi = hexval(raw[i + 1]), lo = hexval(raw[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
    if (c == '\\') c = '/';  // IIS treats backslash as a separator; so do we, consistently
    decoded += c;
  }
  out.trailing_slash = decoded.size() > 1 && decoded.back() == '/';

  std::vector<std::string_view> segs;
  std::string_view d(decoded);
  std::size_t pos = 0;
  while (pos <= d.size()) {
    auto next = d.find('/', pos);
    if (next == std::string_view::npos) next = d.size();
    std::string_view seg = d.substr(pos, next - pos);
    pos = next + 1;
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (segs.empty()) return std::nullopt;  // climbing above the root is never legitimate
      segs.pop_back();
      continue;
    }
    segs.push_back(seg);
  }
  out.path = "/";
  for (std::size_t i = 0; i < segs.size(); ++i) {
    if (i) out.path += '/';
    out.path += segs[i];
  }
  return out;
}

std::optional<TargetForm> split_target(std::string_view target) {
  if (!target.empty() && target[0] == '/') return TargetForm{target, {}, false};
  std::size_t skip = 0;
  if (istarts_with(target, "http://")) skip = 7;
  else if (istarts_with(target, "https://")) skip = 8;
  else return std::nullopt;
  std::string_view rest = target.substr(skip);
  const std::size_t end = rest.find_first_of("/?#");
  TargetForm out;
  out.absolute = true;
  out.authority = rest.substr(0, end);
  if (out.authority.empty() || out.authority.find('@') != std::string_view::npos) return std::nullopt;
  if (end == std::string_view::npos) out.origin = "/";
  else if (rest[end] == '/') out.origin = rest.substr(end);
  else return std::nullopt;  // "http://h?q": rare enough to refuse rather than rebuild
  return out;
}

std::optional<std::string> host_key(std::string_view a) {
  std::string key;
  std::size_t i = 0;
  if (!a.empty() && a[0] == '[') {
    const auto close = a.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    for (char c : a.substr(1, close - 1))
      if (!(hexval(c) >= 0 || c == ':' || c == '.')) return std::nullopt;
    key.assign(a.substr(1, close - 1));
    i = close + 1;
  } else {
    while (i < a.size() && a[i] != ':') {
      const char c = a[i++];
      if (!(is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~')) return std::nullopt;
    }
    key.assign(a.substr(0, i));
    if (!key.empty() && key.back() == '.') key.pop_back();  // "b.test." names b.test
  }
  if (i < a.size()) {  // ":port"
    if (a[i] != ':' || a.size() - i - 1 > 5) return std::nullopt;
    for (char c : a.substr(i + 1))
      if (!is_digit(c)) return std::nullopt;
  }
  for (char& c : key) c = lower(c);
  return key;
}

std::optional<std::string> forward_target(const NormalizedTarget& t) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(t.path.size() + t.query.size() + 8);
  std::string_view p(t.path);
  std::size_t pos = 1;
  out += '/';
  while (pos < p.size()) {
    auto next = p.find('/', pos);
    if (next == std::string_view::npos) next = p.size();
    std::string_view seg = p.substr(pos, next - pos);
    if (ambiguous_segment(seg)) return std::nullopt;
    if (pos > 1) out += '/';
    for (char c : seg) {
      if (raw_in_segment(c)) {
        out += c;
      } else {
        const auto u = static_cast<unsigned char>(c);
        out += '%';
        out += kHex[u >> 4];
        out += kHex[u & 15];
      }
    }
    pos = next + 1;
  }
  if (t.trailing_slash && out.size() > 1) out += '/';
  if (t.has_query) {
    out += '?';
    out += t.query;
  }
  return out;
}

}  // namespace certgate::http
