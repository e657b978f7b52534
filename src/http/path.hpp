#pragma once
// Request-target normalization. The same normalized path decides the location policy and
// the file served, so `/%61dmin` and `/x/../admin` meet the `/admin` rules.
#include <optional>
#include <string>
#include <string_view>

namespace certgate::http {

struct NormalizedTarget {
  std::string path;   // decoded, "/"-separated, no "." or ".." segments, no empty segments
  std::string query;  // raw, without '?'
  bool trailing_slash = false;
};

// Fails (nullopt) on anything that is not origin-form, on bad percent-encoding, NUL or other
// control bytes, and on ".." that climbs above the root: the caller answers 400.
std::optional<NormalizedTarget> normalize_target(std::string_view target);

// The host of a Host header value, lower-cased, without port or IPv6 brackets: what site
// routing compares ("[::1]:8443" → "::1", "A.test:443" → "a.test").
std::string host_only(std::string_view host);

}  // namespace certgate::http
