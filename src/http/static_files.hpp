#pragma once
// Serving files from a site's root. Blocking file-system calls: run only on the file pool,
// never on a request loop.
#include "http/message.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace certgate::http {

// `root` and `default_documents` point into the site's configuration, which the connection's
// generation keeps alive until the answer is sent (a copy of each would cost allocations on
// every request).
struct StaticRequest {
  const std::filesystem::path* root = nullptr;
  const std::vector<std::string>* default_documents = nullptr;
  std::string path;   // normalized (http/path.hpp)
  std::string query;
  bool trailing_slash = false;
  bool head = false;
  std::string if_none_match;
  std::string if_modified_since;
  std::string range;
  std::string if_range;
};

// 200/206/304/301/403.14/404/416; never a path outside `root` (symlinks included).
Response serve_static(const StaticRequest& req);

std::string_view content_type_for(const std::filesystem::path& file);

// If-None-Match: does the list ("*", or comma-separated, weak or strong tags) name `etag`?
bool etag_matches(std::string_view list, std::string_view etag);

// "bytes=a-b" against a resource of `size` bytes. nullopt = ignore the header (serve all);
// a range with length 0 and offset == size = unsatisfiable (416).
struct ByteRange {
  std::uint64_t offset;
  std::uint64_t length;
};
std::optional<ByteRange> parse_range(std::string_view header, std::uint64_t size,
                                     bool& unsatisfiable);

}  // namespace certgate::http
