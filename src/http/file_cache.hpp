#pragma once
// Small static files remembered per event loop for one second (like nginx's open_file_cache
// with open_file_cache_valid), so a busy keep-alive client does not cost a trip to the file
// pool and a path resolution per request. Only answers already decided (after authentication
// and authorization) come here; only whole 200 answers of small files are kept. No locks:
// each loop thread has its own.
#include "http/message.hpp"
#include "http/static_files.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace certgate::http {

// A cached answer for `job`, if one is fresh at `now_ms` (runtime::Clock::steady_ms()); conditional
// (If-None-Match) and HEAD handled. Requests with Range, If-Range or If-Modified-Since always go
// to the file pool.
std::optional<Response> cached_file(const StaticRequest& job, std::int64_t now_ms);
// Remembers `r`, the pool's answer to `job` at `now_ms`, when it is a small, whole 200.
void remember_file(const StaticRequest& job, const Response& r, std::int64_t now_ms);

}  // namespace certgate::http
