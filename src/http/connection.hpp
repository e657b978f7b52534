#pragma once
// Per-connection HTTP/1.1 state machine over TLS or plain TCP (the only code that knows
// Beast's message types).
#include "http/answer_stats.hpp"
#include "log/w3c.hpp"
#include "revocation/store.hpp"
#include "runtime/clock.hpp"
#include "runtime/snapshot.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace certgate::state { class Store; }

namespace certgate::http {

class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  // Shutdown: a connection waiting for its next request closes now; one mid-request closes
  // after its answer.
  virtual void stop_if_idle() = 0;
};

// One configuration generation as the server runs it: the compiled snapshot plus the log
// handles of its sites. Immutable. A connection moves to the current generation at its next
// request after a reload (its site found again by name), so a reload never changes the rules in
// the middle of a request, and never leaves an open connection on rules that were withdrawn.
struct Generation {
  std::shared_ptr<const runtime::Snapshot> snap;
  std::vector<std::size_t> site_log;  // site index → writer handle
  std::vector<log::Format> formats;   // site index → compiled W3C field list
};

// State shared by all loops.
struct ServerState {
  std::atomic<std::shared_ptr<const Generation>> current;  // swapped by reload
  // current's snapshot generation, stored after it: the one load a request pays to notice a reload
  std::atomic<std::uint64_t> generation{0};
  log::Writer* writer = nullptr;
  boost::asio::thread_pool* files = nullptr;      // disk reads
  boost::asio::thread_pool* passwords = nullptr;  // crypt(3): slow on purpose, kept apart
  revocation::Store* revocation = nullptr;        // CRL / OCSP / AIA cache, shared, kept across reloads
  const runtime::Clock* clock = &runtime::system_clock();  // what requests are decided at
  state::Store* single_use = nullptr;             // nonces / tickets ([server.state]), kept across reloads
  std::atomic<std::size_t> connections{0};        // open, all loops
  std::atomic<std::size_t> pending_passwords{0};
  std::string computer_name;
  std::atomic<bool> stopping{false};
  std::atomic<bool> listening{false};  // every listener open (admin /readyz)
  AnswerStats answers;  // the admin status page's last hour
};

// One event loop: only its own thread touches `connections`.
struct Loop {
  std::unordered_set<ConnectionBase*> connections;
  boost::asio::io_context io{1};
};

// Serves a freshly accepted socket of listener `listener_index` under the current generation.
void start_connection(ServerState& state, Loop& loop, std::size_t listener_index,
                      boost::asio::ip::tcp::socket socket);
// What a PROXY protocol header said about the client (http/proxy_accept.hpp).
struct ProxiedClient {
  // The client's address as the balancer saw it. nullopt when the header names none (v2 LOCAL,
  // UNSPEC, UNIX; v1 UNKNOWN): the connection's own peer, the balancer, is what c-ip shows, but
  // the request is not "local" for that — a balancer on loopback does not make its clients local.
  std::optional<boost::asio::ip::address> address;
};
// The same once any PROXY protocol header is read (`proxied`: what it said).
void open_connection(ServerState& state, Loop& loop, std::size_t listener_index,
                     boost::asio::ip::tcp::socket socket, const std::optional<ProxiedClient>& proxied);

}  // namespace certgate::http
