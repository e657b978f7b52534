#pragma once
// Opening a connection to a backend, shared by the HTTP/1.1 (http/proxy_exchange.hpp) and
// HTTP/2 (http/h2_proxy.hpp) exchanges: TCP, TLS with the site's backend context and name check,
// or a Unix socket, under connect_timeout_ms. CRTP: `Derived` has the members named below
// (plan_, io_, site_, resolver_, connecting_, backend_, timed_out_) and arm(), cfg(),
// send_head() (the connection is ready) and finish(ProxyResult).
#include "http/backend_stream.hpp"
#include "http/handler.hpp"
#include "runtime/snapshot.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/error.hpp>

#include <memory>
#include <string>

namespace certgate::http {

struct ProxyResult {
  int status = 0;  // the backend's, once answered
  auth::Verdict answer = auth::Verdict::Http502_3_BackendRefused;  // when nothing was answered
  std::vector<Header> headers;
  std::uint64_t sent = 0;         // bytes written to the client
  bool answered = false;          // something was written to the client
  bool client_reusable = false;   // the client connection may carry another request
  std::string reason;             // for an error page when nothing was answered yet
};

template <class Derived>
class BackendConnecting {
 protected:
  using tcp = boost::asio::ip::tcp;
  using ec_t = boost::beast::error_code;
  Derived& d() { return static_cast<Derived&>(*this); }

  void connect() {
    const config::BackendUrl& b = *d().plan_.backend;
    d().arm(d().cfg().connect_timeout_ms);
    if (b.kind == config::BackendUrl::Kind::Unix) {
      auto sock = std::make_shared<BackendStream::unix_socket>(d().io_);
      sock->async_connect(boost::asio::local::stream_protocol::endpoint(b.unix_path),
                          [self = d().shared_from_this(), sock](ec_t ec) {
                            if (ec) return self->fail_connect(ec);
                            self->backend_ = std::make_unique<BackendStream>(std::move(*sock));
                            self->send_head();
                          });
      return;
    }
    d().resolver_.async_resolve(b.host, b.port, [self = d().shared_from_this()](ec_t ec, tcp::resolver::results_type r) {
      if (ec) return self->fail_connect(ec);
      self->connecting_ = std::make_unique<tcp::socket>(self->io_);
      boost::asio::async_connect(*self->connecting_, r, [self](ec_t ec, const tcp::endpoint&) {
        if (ec) return self->fail_connect(ec);
        boost::system::error_code ignored;
        self->connecting_->set_option(tcp::no_delay(true), ignored);
        if (self->plan_.backend->kind == config::BackendUrl::Kind::Https) return self->tls_handshake();
        self->backend_ = std::make_unique<BackendStream>(std::move(*self->connecting_));
        self->connecting_.reset();
        self->send_head();
      });
    });
  }

  void tls_handshake() {
    boost::asio::ssl::context ctx(d().site_.backend_tls.get());
    SSL_CTX_up_ref(d().site_.backend_tls.get());  // the wrapper frees one reference when it goes
    auto tls = std::make_unique<BackendStream::tls_stream>(std::move(*d().connecting_), ctx);
    d().connecting_.reset();
    const std::string& host = d().plan_.backend->host;
    boost::system::error_code not_ip;
    const bool is_ip = !boost::asio::ip::make_address(host, not_ip).is_unspecified() && !not_ip;
    if (!is_ip) SSL_set_tlsext_host_name(tls->native_handle(), host.c_str());  // SNI takes names only
    if (d().site_.cfg.proxy.verify) {
      if (is_ip) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls->native_handle()), host.c_str());
      else SSL_set1_host(tls->native_handle(), host.c_str());
    }
    auto* raw = tls.get();
    d().backend_ = std::make_unique<BackendStream>(std::move(tls));
    raw->async_handshake(boost::asio::ssl::stream_base::client, [self = d().shared_from_this()](ec_t ec) {
      if (ec) return self->fail_connect(ec);
      self->send_head();
    });
  }

  void fail_connect(ec_t ec) {
    ProxyResult r;
    r.answer = d().timed_out_ ? auth::Verdict::Http502_3_BackendConnectTimeout : auth::Verdict::Http502_3_BackendRefused;
    r.reason = "the backend " + backend_name() + (d().timed_out_ ? " did not accept a connection within connect_timeout_ms" : " cannot be reached: " + ec.message());
    d().finish(std::move(r));
  }

  std::string backend_name() const {
    const auto& b = *static_cast<const Derived&>(*this).plan_.backend;
    return b.kind == config::BackendUrl::Kind::Unix ? "unix:" + b.unix_path : b.host + ":" + b.port;
  }
};

}  // namespace certgate::http
