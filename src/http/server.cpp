#include "http/server.hpp"

#include "state/store.hpp"

#include "http/accept_pause.hpp"
#include "http/admin.hpp"
#include "http/admin_access.hpp"
#include "http/connection.hpp"
#include "pki/key_decoding.hpp"
#include "tls/record_ciphers.hpp"
#include "runtime/service.hpp"
#include "version.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <csignal>
#include <fstream>
#include <limits>
#include <optional>
#include <thread>

namespace certgate::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

struct LoopThread {
  Loop loop;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;  // index = listener index
  std::thread thread;
};

constexpr std::int64_t kExhaustedLogEverySeconds = 60;

// One line per episode (at most one a minute), whichever loop sees it first, rather than one
// per failed accept.
void report_exhausted(const boost::system::error_code& ec) {
  static std::atomic<std::int64_t> last_logged{std::numeric_limits<std::int64_t>::min() / 2};
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t last = last_logged.load(std::memory_order_relaxed);
  if (now - last < kExhaustedLogEverySeconds) return;
  if (!last_logged.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
  spdlog::warn("cannot accept connections: {}; pausing accepts for {} ms at a time until one "
               "succeeds (raise the open-files limit, e.g. LimitNOFILE, or lower max_connections)",
               ec.message(), kAcceptBackoff.count());
}

void accept_next(ServerState& state, Loop& loop, tcp::acceptor& acceptor, std::size_t listener) {
  acceptor.async_accept(loop.io, [&state, &loop, &acceptor, listener](boost::system::error_code ec,
                                                                       tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) start_connection(state, loop, listener, std::move(socket));
    if (out_of_resources(ec)) {
      report_exhausted(ec);
      auto pause = std::make_shared<asio::steady_timer>(loop.io, kAcceptBackoff);
      pause->async_wait([&state, &loop, &acceptor, listener, pause](boost::system::error_code) {
        if (acceptor.is_open()) accept_next(state, loop, acceptor, listener);
      });
      return;
    }
    // Anything else (a client that reset before the accept): the connection is simply dropped.
    accept_next(state, loop, acceptor, listener);
  });
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

std::shared_ptr<const Generation> make_generation(std::shared_ptr<const runtime::Snapshot> snap,
                                                  log::Writer& writer) {
  auto gen = std::make_shared<Generation>();
  for (const auto& site : snap->sites) {
    gen->site_log.push_back(writer.add_site(site.cfg.log, std::string("certgate ") + kVersion));
    gen->formats.emplace_back(site.cfg.log.fields);
  }
  gen->snap = std::move(snap);
  return gen;
}

// Listening sockets are opened once; a reload may change everything but the set of
// addresses (those need a restart, and a reload that changes them is refused).
std::string listener_difference(const runtime::Snapshot& a, const runtime::Snapshot& b) {
  auto describe = [](const runtime::Snapshot& s) {
    std::string out;
    for (const auto& l : s.listeners)
      out += (out.empty() ? "" : ", ") + std::string(l.https ? "https://" : "http://") + l.address +
             ":" + std::to_string(l.port);
    return out;
  };
  std::string da = describe(a), db = describe(b);
  return da == db ? "" : "listen addresses differ (running: " + da + "; new: " + db + ")";
}

void log_startup(const runtime::Snapshot& snap, unsigned threads) {
  for (const auto& w : snap.warnings) spdlog::warn("{}", w);
  for (const auto& l : snap.listeners)
    for (const auto& r : l.routes)
      spdlog::info("site \"{}\" on {}://{}:{}{}", snap.sites[r.site].cfg.name,
                   l.https ? "https" : "http", l.address, l.port,
                   r.host.empty() ? "" : " (host " + r.host + ")");
  spdlog::info("certgate {} ready ({}, {}): {} event loop(s); SIGHUP reloads, SIGTERM or Ctrl-C stops",
               kVersion, pki::key_methods_description(), tls::record_ciphers_description(), threads);
}

}  // namespace

int serve(std::shared_ptr<const runtime::Snapshot> snap, const ServeOptions& options) {
  // Some writes go through OpenSSL's socket BIO (write(2), no MSG_NOSIGNAL): the Redis TLS link,
  // for one. A peer that hung up must give EPIPE, not kill the server.
  std::signal(SIGPIPE, SIG_IGN);
  const auto server_cfg = snap->cfg.server;
  if (!server_cfg.user.empty()) {
    try {
      runtime::check_account(server_cfg.user);
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return 1;
    }
  }
  unsigned threads = server_cfg.threads ? server_cfg.threads : std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;

  log::Writer writer;
  // Disk reads and password hashing: blocking work that must never run on a loop; apart, so
  // that slow hashing cannot delay files. Destroyed explicitly at stop, before the loops.
  std::optional<asio::thread_pool> workers(std::in_place, 2);
  std::optional<asio::thread_pool> password_workers(std::in_place, 1);
  ServerState state;
  state.writer = &writer;
  state.files = &*workers;
  state.passwords = &*password_workers;
  state.clock = options.clock;
  // Destroyed explicitly at stop, before the loops.
  auto revocation_store = std::make_unique<revocation::Store>(revocation::store_settings(server_cfg), *options.clock);
  state.revocation = revocation_store.get();
  // Not reloadable: a reload that moved the store would forget every nonce and ticket in flight.
  std::unique_ptr<certgate::state::Store> single_use;
  try {
    single_use = certgate::state::make_store(server_cfg.state, *options.clock);
  } catch (const std::exception& e) {  // rediss://: ca_file or the client certificate unusable
    spdlog::error("{}", e.what());
    return 1;
  }
  state.single_use = single_use.get();
  state.computer_name = hostname();
  state.current.store(make_generation(snap, writer));
  state.generation.store(snap->generation, std::memory_order_release);
  // Every generation still in use (connections keep old ones until their next request): their
  // directory services are stopped with the server. Touched on this thread only.
  std::vector<std::weak_ptr<const Generation>> generations{state.current.load()};

  // Before the loops: admin sessions on them use it until they are destroyed.
  std::unique_ptr<asio::ssl::context> admin_tls;
  try {
    admin_tls = admin_tls_context(server_cfg);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  std::vector<std::unique_ptr<LoopThread>> loops;
  for (unsigned t = 0; t < threads; ++t) {
    auto lt = std::make_unique<LoopThread>();
    for (std::size_t i = 0; i < snap->listeners.size(); ++i) {
      const auto& l = snap->listeners[i];
      boost::system::error_code ec;
      auto address = asio::ip::make_address(l.address, ec);
      if (ec) {
        spdlog::error("cannot listen on {}:{}: not an IP address", l.address, l.port);
        return 1;
      }
      tcp::endpoint ep(address, l.port);
      auto acc = std::make_unique<tcp::acceptor>(lt->loop.io);
      acc->open(ep.protocol(), ec);
      if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acc->set_option(reuse_port(true), ec);
      if (!ec) acc->bind(ep, ec);
      if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        spdlog::error("cannot listen on {}:{}: {}", ep.address().to_string(), ep.port(), ec.message());
        return 1;
      }
      accept_next(state, lt->loop, *acc, i);
      lt->acceptors.push_back(std::move(acc));
    }
    loops.push_back(std::move(lt));
  }
  if (!server_cfg.admin_listen.empty()) {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(server_cfg.admin_address, ec);
    auto acc = std::make_unique<tcp::acceptor>(loops.front()->loop.io);
    tcp::endpoint ep(address, server_cfg.admin_port);
    if (!ec) acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      spdlog::error("cannot listen on admin_listen {}: {}", server_cfg.admin_listen, ec.message());
      return 1;
    }
    accept_admin(state, *acc, admin_tls.get());
    loops.front()->acceptors.push_back(std::move(acc));  // closed with the others at stop
    if (!options.quiet)
      spdlog::info("status page and metrics on {}://{}/", admin_tls ? "https" : "http", server_cfg.admin_listen);
  }
  state.listening = true;
  if (!server_cfg.pid_file.empty()) std::ofstream(server_cfg.pid_file) << ::getpid() << "\n";
  // Every listening socket is open and every certificate and key has been read: what root was
  // needed for is done. (A reload reads its files as this account.)
  if (!server_cfg.user.empty()) {
    try {
      runtime::drop_privileges(server_cfg.user);
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return 1;
    }
    if (!options.quiet) spdlog::info("running as user \"{}\"", server_cfg.user);
  }
  if (!options.quiet) log_startup(*snap, threads);

  for (auto& lt : loops) {
    lt->thread = std::thread([&io = lt->loop.io] {
      auto guard = asio::make_work_guard(io);
      io.run();
    });
  }

  asio::io_context main_io;
  asio::signal_set reload_signal(main_io, SIGHUP);
  std::uint64_t generation = snap->generation;
  std::function<void()> wait_reload = [&] {
    reload_signal.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      runtime::notify_reloading();
      if (!options.reload) {
        spdlog::warn("SIGHUP: reload is not available here");
      } else {
        try {
          auto next = options.reload(generation + 1);
          auto running = state.current.load();
          if (auto diff = listener_difference(*running->snap, *next); !diff.empty())
            throw std::runtime_error(diff + "; restart certgate to change them");
          state.current.store(make_generation(next, writer));
          std::erase_if(generations, [](const auto& g) { return g.expired(); });
          generations.push_back(state.current.load());
          generation = next->generation;
          state.generation.store(generation, std::memory_order_release);
          for (const auto& w : next->warnings) spdlog::warn("{}", w);
          spdlog::info("reloaded: configuration generation {} (open connections follow at their "
                       "next request)", generation);
        } catch (const std::exception& e) {
          spdlog::error("reload refused, the running configuration stays in force: {}", e.what());
        }
      }
      runtime::notify_ready();
      wait_reload();
    });
  };
  wait_reload();

  // logrotate's postrotate (packaging/certgate.logrotate): the W3C files are opened again by name.
  asio::signal_set reopen_signal(main_io, SIGUSR1);
  std::function<void()> wait_reopen = [&] {
    reopen_signal.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      writer.reopen();
      if (!options.quiet) spdlog::info("SIGUSR1: W3C log files reopened");
      wait_reopen();
    });
  };
  wait_reopen();

  asio::signal_set stop_signals(main_io, SIGINT, SIGTERM);
  // The signal handlers are installed: systemd may now send SIGHUP for a reload.
  runtime::notify_ready();
  stop_signals.async_wait([&](boost::system::error_code, int sig) {
    if (!options.quiet)
      spdlog::info("signal {}: stopping; in-flight requests may finish within {} ms", sig,
                   server_cfg.shutdown_grace_ms);
    runtime::notify_stopping();
    reload_signal.cancel();
    reopen_signal.cancel();
    state.stopping = true;
    state.listening = false;
    for (auto& lt : loops) {
      asio::post(lt->loop.io, [&lt = *lt] {
        for (auto& acc : lt.acceptors) {
          boost::system::error_code ec;
          acc->close(ec);
        }
        // Copy: stop_if_idle() may destroy connections, which erase themselves.
        std::vector<ConnectionBase*> conns(lt.loop.connections.begin(), lt.loop.connections.end());
        for (auto* c : conns)
          if (lt.loop.connections.count(c)) c->stop_if_idle();
      });
    }
  });
  main_io.run();

  // Give in-flight requests the grace period, checking whether all are done.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(server_cfg.shutdown_grace_ms);
  for (;;) {
    std::atomic<std::size_t> open{0};
    std::atomic<std::size_t> answered{0};
    for (auto& lt : loops)
      asio::post(lt->loop.io, [&lt = *lt, &open, &answered] {
        open += lt.loop.connections.size();
        ++answered;
      });
    while (answered < loops.size()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (open == 0 || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Stop order. Requests still waiting now wait for a worker thread (a password check, a file
  // read, a CRL or OCSP fetch, a directory lookup) whose answer would be posted to their loop,
  // and whose callback holds the connection, which belongs to its loop. So: (1) the loops stop
  // (nothing new is asked of the workers); (2) each kind of worker stops — without waiting for
  // a CRL server or a directory that does not answer — and drops the callbacks still waiting
  // (the connections they hold close, on objects that still exist, while no loop runs); (3)
  // only then are the loops, with the handlers still queued on them, destroyed.
  for (auto& lt : loops) lt->loop.io.stop();
  for (auto& lt : loops)
    if (lt->thread.joinable()) lt->thread.join();
  // A check or read in progress ends (one crypt(3) at most); the queued ones are dropped.
  password_workers->stop();
  workers->stop();
  password_workers->join();
  workers->join();
  password_workers.reset();
  workers.reset();
  state.passwords = nullptr;
  state.files = nullptr;
  revocation_store->shutdown();
  for (const auto& weak : generations)
    if (auto gen = weak.lock())
      for (const auto& site : gen->snap->sites)
        if (site.directory) site.directory->shutdown();
  generations.clear();
  revocation_store.reset();
  state.revocation = nullptr;
  state.single_use = nullptr;
  single_use.reset();
  loops.clear();  // connections (and their generations) go before the writer
  writer.stop();
  if (!server_cfg.pid_file.empty()) {
    // After `user =`, a pid file in a folder only root may change stays (and must not throw).
    std::error_code ignored;
    std::filesystem::remove(server_cfg.pid_file, ignored);
  }
  if (!options.quiet) spdlog::info("stopped; logs flushed");
  return 0;
}

}  // namespace certgate::http
