#pragma once
// Per-connection HTTP/1.1 state machine over TLS or plain TCP (the only code that knows
// Beast's message types).
#include "log/w3c.hpp"
#include "runtime/snapshot.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace certgate::http {

class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  // Shutdown: a connection waiting for its next request closes now; one mid-request closes
  // after its answer.
  virtual void stop_if_idle() = 0;
};

// State shared by all loops. Read-only after start except `stopping`.
struct ServerState {
  std::shared_ptr<const runtime::Snapshot> snapshot;
  log::Writer* writer = nullptr;
  std::vector<std::size_t> site_log;  // site index → writer handle
  std::vector<log::Format> formats;   // site index → compiled W3C field list
  boost::asio::thread_pool* files = nullptr;
  std::string computer_name;
  std::atomic<bool> stopping{false};
};

// One event loop: only its own thread touches `connections`.
struct Loop {
  std::unordered_set<ConnectionBase*> connections;
  boost::asio::io_context io{1};
};

void start_connection(ServerState& state, Loop& loop, const runtime::ListenerRuntime& listener,
                      boost::asio::ssl::context* tls, boost::asio::ip::tcp::socket socket);

}  // namespace certgate::http
