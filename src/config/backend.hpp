#pragma once
// A backend address as written in `backend = "..."`.
#include <optional>
#include <string>
#include <string_view>

namespace certgate::config {

struct BackendUrl {
  enum class Kind { Http, Https, Unix } kind = Kind::Http;
  std::string host;       // name or IP (no brackets)
  std::string port;       // "80" / "443" when not given
  std::string authority;  // host[:port] as written, for the Host header
  std::string prefix;     // path prefix ("" or "/app")
  std::string unix_path;
};
std::optional<BackendUrl> parse_backend(std::string_view url);

}  // namespace certgate::config
