#include "http/backend_stream.hpp"

#include <sys/socket.h>

#include <unordered_map>
#include <vector>

namespace certgate::http {
namespace {

std::unordered_map<std::string, std::vector<std::unique_ptr<BackendStream>>>& pool() {
  thread_local std::unordered_map<std::string, std::vector<std::unique_ptr<BackendStream>>> p;
  return p;
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

std::unique_ptr<BackendStream> take_idle(const std::string& key) {
  auto it = pool().find(key);
  if (it == pool().end()) return nullptr;
  auto& idle = it->second;
  while (!idle.empty()) {
    auto s = std::move(idle.back());
    idle.pop_back();
    if (s->reusable()) return s;
    s->close();
  }
  return nullptr;
}

void put_idle(const std::string& key, std::unique_ptr<BackendStream> s, std::size_t max_idle) {
  auto& idle = pool()[key];
  if (idle.size() >= max_idle) {
    s->close();
    return;
  }
  idle.push_back(std::move(s));
}

}  // namespace certgate::http
