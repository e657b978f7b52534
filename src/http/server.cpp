#include "http/server.hpp"

#include "http/connection.hpp"
#include "version.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <thread>

namespace certgate::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

struct LoopThread {
  Loop loop;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::thread thread;
};

void accept_next(ServerState& state, Loop& loop, tcp::acceptor& acceptor,
                 const runtime::ListenerRuntime& listener, asio::ssl::context* tls) {
  acceptor.async_accept(loop.io, [&state, &loop, &acceptor, &listener, tls](
                                     boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) start_connection(state, loop, listener, tls, std::move(socket));
    // EMFILE and friends: keep accepting; the failing connection is simply dropped.
    accept_next(state, loop, acceptor, listener, tls);
  });
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

}  // namespace

int serve(std::shared_ptr<const runtime::Snapshot> snap, const ServeOptions& options) {
  const auto& server_cfg = snap->cfg.server;
  unsigned threads = server_cfg.threads ? server_cfg.threads : std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;

  log::Writer writer;
  asio::thread_pool files(2);
  ServerState state;
  state.snapshot = snap;
  state.writer = &writer;
  state.files = &files;
  state.computer_name = hostname();
  for (const auto& site : snap->sites) {
    state.site_log.push_back(writer.add_site(site.cfg.log, std::string("certgate ") + kVersion));
    state.formats.emplace_back(site.cfg.log.fields);
  }

  // asio::ssl::stream only reads the SSL_CTX at construction; wrap each listener's default
  // context (the ClientHello hook switches to the site's own).
  std::vector<std::unique_ptr<asio::ssl::context>> tls_contexts;
  for (const auto& l : snap->listeners) {
    if (!l.https) {
      tls_contexts.push_back(nullptr);
      continue;
    }
    const auto* route = l.default_route() ? l.default_route() : &l.routes.front();
    SSL_CTX_up_ref(route->ctx);
    tls_contexts.push_back(std::make_unique<asio::ssl::context>(route->ctx));
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
        spdlog::error("cannot listen on {}: {}", ep.address().to_string() + ":" +
                                                     std::to_string(ep.port()),
                      ec.message());
        return 1;
      }
      accept_next(state, lt->loop, *acc, l, tls_contexts[i].get());
      lt->acceptors.push_back(std::move(acc));
    }
    loops.push_back(std::move(lt));
  }

  if (!options.quiet) {
    for (const auto& w : snap->warnings) spdlog::warn("{}", w);
    for (const auto& l : snap->listeners)
      for (const auto& r : l.routes)
        spdlog::info("site \"{}\" on {}://{}:{}{}", snap->sites[r.site].cfg.name,
                     l.https ? "https" : "http", l.address, l.port,
                     r.host.empty() ? "" : " (host " + r.host + ")");
    spdlog::info("certgate {} ready: {} event loop(s); SIGTERM or Ctrl-C to stop", kVersion,
                 threads);
  }

  for (auto& lt : loops) {
    lt->thread = std::thread([&io = lt->loop.io] {
      auto guard = asio::make_work_guard(io);
      io.run();
    });
  }

  // Wait for a stop signal on the main thread.
  asio::io_context main_io;
  asio::signal_set signals(main_io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int sig) {
    if (!options.quiet)
      spdlog::info("signal {}: stopping; in-flight requests may finish within {} ms", sig,
                   server_cfg.shutdown_grace_ms);
    state.stopping = true;
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

  // Give in-flight requests the grace period, checking twice a second whether all are done.
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
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& lt : loops) lt->loop.io.stop();
  for (auto& lt : loops)
    if (lt->thread.joinable()) lt->thread.join();
  files.join();
  writer.stop();
  if (!options.quiet) spdlog::info("stopped; logs flushed");
  return 0;
}

}  // namespace certgate::http
