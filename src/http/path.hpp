#pragma once
// Request-target normalization. The same normalized path decides the location policy, the file
// served and the path forwarded to a backend, so `/%61dmin` and `/x/../admin` meet the `/admin`
// rules and a backend never resolves a path the policy did not see.
#include <optional>
#include <string>
#include <string_view>

namespace certgate::http {

struct NormalizedTarget {
  std::string path;   // decoded, "/"-separated, no "." or ".." segments, no empty segments
  std::string query;  // raw, without '?'
  bool has_query = false;  // the target had a '?' (possibly with an empty query)
  bool trailing_slash = false;
};

// Fails (nullopt) on anything that is not origin-form, on bad percent-encoding, NUL or other
// control bytes, on a raw '#' (never part of a request target, RFC 9112 §3.2) and on ".." that
// climbs above the root: the caller answers 400.
std::optional<NormalizedTarget> normalize_target(std::string_view target);

// A request target split per RFC 9112 §3.2: origin-form "/p?q" as is; absolute-form
// "http(s)://authority/p?q" into its authority (which then stands for Host, §3.2.2) and "/p?q".
// Fails on authority-form (CONNECT), asterisk-form (OPTIONS *), other schemes and userinfo.
struct TargetForm {
  std::string_view origin;     // "/p?q"
  std::string_view authority;  // absolute-form only
  bool absolute = false;
};
std::optional<TargetForm> split_target(std::string_view target);

// The name a Host value (or a target's authority) is routed by: lower case, without port and
// without one trailing dot ("B.test.:443" → "b.test"); "" for an empty value. Fails on anything
// that is not a DNS-style name, an IPv4 address or a bracketed IPv6 literal with an optional port.
std::optional<std::string> host_key(std::string_view authority);

// The origin-form target sent to a backend: exactly the normalized path the policy matched,
// percent-encoded again, then the query unchanged. Fails on segments that common backends
// resolve to another path than the one matched: a "." or ".." hidden behind a path parameter
// ("..;x", Tomcat/Jetty), a trailing dot or space ("secure.", IIS/Windows) and a '%' that
// would decode a second time ("%252e" arrives here as "%2e").
std::optional<std::string> forward_target(const NormalizedTarget& t);

}  // namespace certgate::http
