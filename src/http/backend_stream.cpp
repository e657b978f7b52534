#include "http/backend_stream.hpp"

#include <sys/socket.h>

#include <map>
#include <unordered_map>
#include <vector>

namespace certgate::http {
namespace {

using Idle = std::vector<std::unique_ptr<BackendStream>>;
// (generation, site) → backend as configured → idle connections; ordered so that the oldest
// generation is first.
using Pool = std::map<std::pair<std::uint64_t, std::size_t>, std::unordered_map<std::string, Idle>>;

Pool& pool() {
  thread_local Pool p;
  return p;
}

// A connection of an older generation may still finish a request and offer its backend
// connection back; it is closed instead of pooled once a newer generation has used the pool.
void drop_older_than(Pool& p, std::uint64_t generation) {
  while (!p.empty() && p.begin()->first.first < generation) {
    for (auto& [backend, idle] : p.begin()->second)
      for (auto& s : idle) s->close();
    p.erase(p.begin());
  }
}

}  // namespace

bool BackendStream::reusable() {
  return std::visit(
      [](auto& s) {
        auto& sock = lowest(s);
        if (!sock.is_open()) return false;
        char byte;
        ssize_t n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);  // open and quiet
      },
      s_);
}

std::unique_ptr<BackendStream> take_idle(const PoolKey& key) {
  auto& p = pool();
  drop_older_than(p, key.generation);
  auto site = p.find({key.generation, key.site});
  if (site == p.end()) return nullptr;
  auto it = site->second.find(key.backend);
  if (it == site->second.end()) return nullptr;
  auto& idle = it->second;
  while (!idle.empty()) {
    auto s = std::move(idle.back());
    idle.pop_back();
    if (s->reusable()) return s;
    s->close();
  }
  return nullptr;
}

void put_idle(const PoolKey& key, std::unique_ptr<BackendStream> s, std::size_t max_idle) {
  auto& p = pool();
  if (!p.empty() && p.rbegin()->first.first > key.generation) {
    s->close();
    return;
  }
  drop_older_than(p, key.generation);
  auto& idle = p[{key.generation, key.site}][key.backend];
  if (idle.size() >= max_idle) {
    s->close();
    return;
  }
  idle.push_back(std::move(s));
}

}  // namespace certgate::http
