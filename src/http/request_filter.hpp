#pragma once
// IIS request filtering's hidden segments (<requestFiltering><hiddenSegments>): paths that name
// web.config, bin, App_Data... or a dot-segment (.git, .env) are answered 404.8 whatever is on
// disk or behind the backend. Pure: no I/O, nothing allocated per request.
#include <string>
#include <string_view>
#include <vector>

namespace certgate::http {

struct HiddenSegments {
  std::vector<std::string> names;  // lower case; a whole path segment each
  bool allow_dot_segments = false;
};

// The segment of `path` (normalized, decoded: http/path.hpp) that is hidden, or "" when none is.
// A segment matches a name case-insensitively after what Windows ignores when it opens a file
// (trailing dots and spaces, an NTFS stream suffix "::$DATA"), so "/WEB.CONFIG.", "/web.config "
// and "/web.config::$DATA" are refused as "/web.config" is: a Windows backend would serve them
// as web.config. Dot-segments ("/.git/config") are hidden unless allow_dot_segments, except
// ".well-known" (RFC 8615: published on purpose, e.g. ACME http-01 and security.txt).
std::string_view hidden_segment(std::string_view path, const HiddenSegments& hidden);

}  // namespace certgate::http
