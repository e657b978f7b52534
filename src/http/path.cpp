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
}  // namespace

std::optional<NormalizedTarget> normalize_target(std::string_view target) {
  if (target.empty() || target[0] != '/') return std::nullopt;
  NormalizedTarget out;
  auto q = target.find('?');
  std::string_view raw = target.substr(0, q);
  if (q != std::string_view::npos) out.query = std::string(target.substr(q + 1));
  auto hash = out.query.find('#');
  if (hash != std::string::npos) out.query.resize(hash);

  std::string decoded;
  decoded.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '#') break;
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

std::string host_only(std::string_view host) {
  std::string h(host);
  if (!h.empty() && h.front() == '[') {
    auto close = h.find(']');
    h = close == std::string::npos ? h : h.substr(1, close - 1);
  } else if (auto colon = h.rfind(':'); colon != std::string::npos) {
    h.resize(colon);
  }
  for (auto& ch : h) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return h;
}

}  // namespace certgate::http
