#include "http/file_cache.hpp"

#include <unordered_map>

namespace certgate::http {
namespace {

constexpr std::int64_t kValidMs = 1000;
constexpr std::size_t kMaxBody = 64 * 1024;
constexpr std::size_t kMaxEntries = 256;

struct Entry {
  Response response;  // a 200 with its body
  std::string etag;
  std::int64_t checked_ms;  // runtime::Clock::steady_ms()
};

std::unordered_map<std::string, Entry>& cache() {
  thread_local std::unordered_map<std::string, Entry> c;
  return c;
}

bool cacheable(const StaticRequest& job) {
  return job.range.empty() && job.if_range.empty() && job.if_modified_since.empty();
}

std::string key_of(const StaticRequest& job) {
  std::string key = job.root.string();
  key += '\0';
  key += job.path;
  key += job.trailing_slash ? "/" : "";
  for (const auto& d : job.default_documents) {  // default documents change what "/" means
    key += '\0';
    key += d;
  }
  return key;
}

}  // namespace

std::optional<Response> cached_file(const StaticRequest& job, std::int64_t now_ms) {
  if (!cacheable(job)) return std::nullopt;
  auto& c = cache();
  auto it = c.find(key_of(job));
  if (it == c.end()) return std::nullopt;
  if (now_ms - it->second.checked_ms > kValidMs) {
    c.erase(it);
    return std::nullopt;
  }
  Response r = it->second.response;
  if (!job.if_none_match.empty() && etag_matches(job.if_none_match, it->second.etag)) {
    r.status = 304;
    r.body.clear();
  }
  r.head_only = job.head;
  return r;
}

void remember_file(const StaticRequest& job, const Response& r, std::int64_t now_ms) {
  if (!cacheable(job) || r.status != 200 || r.file || r.body.size() > kMaxBody || !job.if_none_match.empty())
    return;
  auto& c = cache();
  if (c.size() >= kMaxEntries) c.clear();  // bounded; refilled from the pool on demand
  std::string etag;
  for (const auto& h : r.headers)
    if (iequals(h.name, "ETag")) etag = h.value;
  Response stored = r;
  stored.head_only = false;
  c[key_of(job)] = Entry{std::move(stored), std::move(etag), now_ms};
}

}  // namespace certgate::http
