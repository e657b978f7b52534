#include "http/request_filter.hpp"

namespace certgate::http {
namespace {

bool iequal(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

// What NTFS opens for this segment: "name:stream:$DATA" is the file "name", and trailing dots
// and spaces are dropped by Win32 path normalization.
std::string_view windows_name(std::string_view seg) {
  if (auto colon = seg.find(':'); colon != std::string_view::npos) seg = seg.substr(0, colon);
  while (!seg.empty() && (seg.back() == '.' || seg.back() == ' ')) seg.remove_suffix(1);
  return seg;
}

}  // namespace

std::string_view hidden_segment(std::string_view path, const HiddenSegments& hidden) {
  std::size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] == '/') {
      ++pos;
      continue;
    }
    std::size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view seg = path.substr(pos, end - pos);
    pos = end;
    if (seg[0] == '.' && !hidden.allow_dot_segments && !iequal(seg, ".well-known")) return seg;
    const std::string_view name = windows_name(seg);
    for (const auto& h : hidden.names)
      if (iequal(name, h)) return seg;
  }
  return {};
}

}  // namespace certgate::http
