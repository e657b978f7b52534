#include "http/file_cache.hpp"

#include <unordered_map>

namespace certgate::http {
namespace {

constexpr std::int64_t kValidMs = 1000;
constexpr std::size_t kMaxBody = 64 * 1024;
constexpr std::size_t kMaxEntries = 256;

struct Entry {
  std::shared_ptr<const PreparedAnswer> answer;  // a 200: its headers and body
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

// Built in one string per thread, reused: a hit allocates nothing.
const std::string& key_of(const StaticRequest& job) {
  thread_local std::string key;
  key.assign(job.root->native());
  key += '\0';
  key += job.path;
  if (job.trailing_slash) key += '/';
  for (const auto& d : *job.default_documents) {  // default documents change what "/" means
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
  if (now_ms - it->second.checked_ms > kValidMs || now_ms < it->second.checked_ms) {
    c.erase(it);
    return std::nullopt;
  }
  Response r;
  r.prepared = it->second.answer;
  if (!job.if_none_match.empty() && etag_matches(job.if_none_match, it->second.etag)) r.status = 304;
  r.head_only = job.head;
  return r;
}

void remember_file(const StaticRequest& job, const Response& r, std::int64_t now_ms) {
  if (!cacheable(job) || r.status != 200 || r.file || r.prepared || r.body.size() > kMaxBody ||
      !job.if_none_match.empty())
    return;
  auto& c = cache();
  if (c.size() >= kMaxEntries) c.clear();  // bounded; refilled from the pool on demand
  auto answer = std::make_shared<PreparedAnswer>();
  for (const auto& h : r.headers) {
    answer->headers += h.name;
    answer->headers += ": ";
    answer->headers += h.value;
    answer->headers += "\r\n";
  }
  answer->body = r.body;
  answer->has_cache_control = !r.header("Cache-Control").empty();
  c[key_of(job)] = Entry{std::move(answer), std::string(r.header("ETag")), now_ms};
}

}  // namespace certgate::http
