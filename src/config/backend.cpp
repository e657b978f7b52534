#include "config/backend.hpp"

namespace certgate::config {

std::optional<BackendUrl> parse_backend(std::string_view url) {
  BackendUrl b;
  if (url.rfind("unix:", 0) == 0) {
    b.kind = BackendUrl::Kind::Unix;
    b.unix_path = std::string(url.substr(5));
    b.authority = "localhost";
    return b.unix_path.empty() ? std::nullopt : std::optional(b);
  }
  std::string_view rest;
  if (url.rfind("http://", 0) == 0) rest = url.substr(7), b.port = "80";
  else if (url.rfind("https://", 0) == 0) rest = url.substr(8), b.kind = BackendUrl::Kind::Https, b.port = "443";
  else return std::nullopt;
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) b.prefix = std::string(rest.substr(slash));
  while (!b.prefix.empty() && b.prefix.back() == '/') b.prefix.pop_back();
  b.authority = std::string(authority);
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    b.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':') b.port = std::string(authority.substr(close + 2));
  } else {
    auto colon = authority.rfind(':');
    b.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) b.port = std::string(authority.substr(colon + 1));
  }
  if (b.host.empty() || b.port.empty()) return std::nullopt;
  return b;
}

}  // namespace certgate::config
