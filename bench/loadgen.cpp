// certgate-load: a mutual-TLS load generator. Unlike wrk/h2load (no client certificates) or
// `ab -E` (one certificate), it presents a pool of distinct client certificates, made at start
// from an issuing CA, so a server sees a realistic population of returning clients.
//
//   certgate-load --url https://127.0.0.1:8443/ --ca root.pem
//       --issuer-cert issuing-ca.pem --issuer-key issuing-ca.key --clients 1000
//       --mode full|resume|keepalive --tls 1.3 --connections 32 --duration 10 --cpu 1
//       [--http 1.0|2 [--streams N]] [--requests N]
//
// Modes: full = a new TCP connection and full handshake per request (no session reuse);
// resume = a new connection per request resuming the worker's TLS session; keepalive = one
// connection per worker, many requests; idle = one request per connection, then all stay open
// until the end (for memory per idle connection; opened 32 at a time). --http 1.0 asks in HTTP/1.0
// with "Connection: keep-alive" where the mode keeps connections open, as `ab -k` and many health
// checkers do. --http 2 speaks HTTP/2 (ALPN h2, nghttp2) with --streams requests in flight per
// connection: full = a handshake and one request per connection; keepalive = one connection per
// worker, a new stream as each one ends. --requests N stops after N answers (for instruction
// counts: bench/callgrind.sh).
// Prints one line of key=value results.
#include "client_cert.hpp"
#include "tls/record_ciphers.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <CLI/CLI.hpp>
#include <nghttp2/nghttp2.h>
#include <openssl/pem.h>
#include <sched.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <strings.h>
#include <unordered_map>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <vector>

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Identity {
  EVP_PKEY* key;
  X509* cert;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// N client certificates (ECDSA P-256, clientAuth) signed by the issuing CA.
std::vector<Identity> make_clients(const std::string& cert_file, const std::string& key_file, int n) {
  std::string c = read_all(cert_file), k = read_all(key_file);
  BIO* cb = BIO_new_mem_buf(c.data(), static_cast<int>(c.size()));
  BIO* kb = BIO_new_mem_buf(k.data(), static_cast<int>(k.size()));
  X509* issuer = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
  EVP_PKEY* issuer_key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
  BIO_free(cb);
  BIO_free(kb);
  if (!issuer || !issuer_key) throw std::runtime_error("cannot load the issuer certificate and key");
  std::vector<Identity> out;
  for (int i = 0; i < n; ++i) {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    X509* x = certgate::bench::make_client_cert(issuer, issuer_key, key, 1000000 + i, "load-client-" + std::to_string(i), 7,
                                      "Certgate Demo");
    out.push_back({key, x});
  }
  return out;
}

struct Options {
  std::string url = "https://127.0.0.1:8443/";
  std::string ca, issuer_cert, issuer_key, sni = "localhost", mode = "full", tls = "1.3";
  int clients = 1000, connections = 32, cpu = -1, http = 11, streams = 1;
  std::uint64_t max_requests = 0;  // 0: until the duration is over
  double duration = 10;
  bool send_chain = true;
};

struct Stats {
  std::uint64_t requests = 0, handshakes = 0, resumed = 0, errors = 0;
  std::vector<std::uint32_t> latency_us;
};

class Worker : public std::enable_shared_from_this<Worker> {
 public:
  Worker(asio::io_context& io, ssl::context& ctx, const tcp::endpoint& ep, const Options& o,
         const std::vector<Identity>& ids, X509* issuer, int index, Stats& stats, Clock::time_point end,
         std::function<void()> on_hold = {})
      : io_(io), ctx_(ctx), ep_(ep), o_(o), ids_(ids), issuer_(issuer), next_id_(index), stats_(stats), end_(end),
        on_hold_(std::move(on_hold)) {
    target_ = o.url.substr(o.url.find('/', 8));
  }
  void start() { connect(); }

 private:
  void connect() {
    if (Clock::now() >= end_) return;
    stream_ = std::make_unique<ssl::stream<tcp::socket>>(io_, ctx_);
    SSL* s = stream_->native_handle();
    const Identity& id = ids_[static_cast<std::size_t>(next_id_) % ids_.size()];
    if (o_.mode == "full") next_id_ += o_.connections;  // a different client each time
    SSL_use_certificate(s, id.cert);
    SSL_use_PrivateKey(s, id.key);
    if (o_.send_chain && issuer_) SSL_add1_chain_cert(s, issuer_);
    SSL_set_tlsext_host_name(s, o_.sni.c_str());
    if (o_.mode == "resume" && session_) SSL_set_session(s, session_);
    started_ = Clock::now();
    stream_->next_layer().async_connect(ep_, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->error();
      self->stream_->next_layer().set_option(tcp::no_delay(true));
      self->stream_->async_handshake(ssl::stream_base::client, [self](beast::error_code ec) {
        if (ec) return self->error();
        ++self->stats_.handshakes;
        SSL* s = self->stream_->native_handle();
        if (SSL_session_reused(s)) ++self->stats_.resumed;
        if (self->o_.http == 20) return self->h2_start();
        self->request();
      });
    });
  }

  void request() {
    if (o_.mode == "keepalive") return keepalive_request();
    req_ = {http::verb::get, target_, o_.http};
    req_.set(http::field::host, o_.sni);
    req_.keep_alive(o_.mode == "idle");  // idle: the server must keep it open
    http::async_write(*stream_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->error();
      self->res_ = {};
      http::async_read(*self->stream_, self->buf_, self->res_, [self](beast::error_code ec, std::size_t) {
        if (ec) return self->error();
        if (self->res_.result_int() != 200) ++self->stats_.errors;
        ++self->stats_.requests;
        if (self->o_.max_requests && self->stats_.requests >= self->o_.max_requests) self->io_.stop();
        self->stats_.latency_us.push_back(static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - self->started_).count()));
        if (self->o_.mode == "keepalive" && Clock::now() < self->end_) return self->request();
        if (self->o_.mode == "idle") return self->hold();
        self->done_with_connection();
      });
    });
  }

  // --- keep-alive: the request serialised once, the answer framed by its Content-Length --------
  // The load tool must outrun the server it measures: Beast's serializer and a fresh response
  // message per request cost it a fifth of its CPU (perf), and on two cores it then limited the
  // rate before the server did, so the server's CPU per request counted its idle wake-ups.
  void keepalive_request() {
    if (request_text_.empty()) {
      http::request<http::empty_body> req{http::verb::get, target_, o_.http};
      req.set(http::field::host, o_.sni);
      req.keep_alive(true);
      std::ostringstream os;
      os << req;
      request_text_ = os.str();
    }
    started_ = Clock::now();
    asio::async_write(*stream_, asio::buffer(request_text_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->error();
      self->read_answer();
    });
  }

  // Reads until buf_ holds a whole answer: its head and Content-Length bytes of body.
  void read_answer() {
    const std::string_view data(static_cast<const char*>(buf_.data().data()), buf_.size());
    const auto head_end = data.find("\r\n\r\n");
    if (head_end != std::string_view::npos) {
      const std::string_view head = data.substr(0, head_end + 2);
      std::size_t length = 0;
      bool framed = false;
      for (std::size_t at = head.find("\r\n"); at != std::string_view::npos; at = head.find("\r\n", at + 2)) {
        const std::string_view line = head.substr(at + 2);
        if (line.size() > 15 && strncasecmp(line.data(), "content-length:", 15) == 0) {
          length = std::strtoul(std::string(line.substr(15, line.find("\r\n") - 15)).c_str(), nullptr, 10);
          framed = true;
          break;
        }
      }
      if (!framed) return error();  // the measured answers are a small file, with a length
      const std::size_t total = head_end + 4 + length;
      if (buf_.size() >= total) {
        if (head.size() < 12 || head.substr(9, 3) != "200") ++stats_.errors;
        buf_.consume(total);
        return answered();
      }
    } else if (buf_.size() > 64 * 1024) {
      return error();
    }
    stream_->async_read_some(buf_.prepare(16 * 1024), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      if (ec) return self->error();
      self->buf_.commit(n);
      self->read_answer();
    });
  }

  void answered() {
    ++stats_.requests;
    if (o_.max_requests && stats_.requests >= o_.max_requests) io_.stop();
    stats_.latency_us.push_back(static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_).count()));
    if (Clock::now() < end_) return keepalive_request();
    done_with_connection();
  }

  // --- HTTP/2: one nghttp2 client session per connection ------------------------------------
  void h2_start() {
    static nghttp2_session_callbacks* cbs = [] {
      nghttp2_session_callbacks* c = nullptr;
      nghttp2_session_callbacks_new(&c);
      nghttp2_session_callbacks_set_on_header_callback(
          c, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl,
                uint8_t, void* p) {
            if (f->hd.type == NGHTTP2_HEADERS && nl == 7 && std::memcmp(n, ":status", 7) == 0 &&
                !(vl == 3 && std::memcmp(v, "200", 3) == 0))
              ++static_cast<Worker*>(p)->stats_.errors;
            return 0;
          });
      nghttp2_session_callbacks_set_on_stream_close_callback(c, [](nghttp2_session*, int32_t id, uint32_t code, void* p) {
        static_cast<Worker*>(p)->h2_stream_done(id, code);
        return 0;
      });
      return c;
    }();
    if (h2_) nghttp2_session_del(h2_);
    nghttp2_session_client_new(&h2_, cbs, this);
    nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, nullptr, 0);
    h2_open_ = 0;
    h2_closing_ = h2_failed_ = false;
    for (int i = 0; i < o_.streams; ++i) h2_submit();
    h2_read();
    h2_pump();
  }

  void h2_submit() {
    const std::string scheme = "https";
    const nghttp2_nv nv[] = {
        {(uint8_t*)":method", (uint8_t*)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t*)":scheme", (uint8_t*)scheme.data(), 7, scheme.size(), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t*)":path", (uint8_t*)target_.data(), 5, target_.size(), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t*)":authority", (uint8_t*)o_.sni.data(), 10, o_.sni.size(), NGHTTP2_NV_FLAG_NONE},
    };
    const int32_t id = nghttp2_submit_request(h2_, nullptr, nv, 4, nullptr, nullptr);
    if (id < 0) return;
    h2_started_[id] = Clock::now();
    ++h2_open_;
  }

  void h2_stream_done(int32_t id, uint32_t code) {
    --h2_open_;
    if (code != NGHTTP2_NO_ERROR) ++stats_.errors;
    ++stats_.requests;
    if (o_.max_requests && stats_.requests >= o_.max_requests) io_.stop();
    stats_.latency_us.push_back(static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - h2_started_[id]).count()));
    h2_started_.erase(id);
    if (o_.mode == "keepalive" && Clock::now() < end_) return h2_submit();
    if (h2_open_ == 0) h2_closing_ = true;
  }

  void h2_read() {
    stream_->async_read_some(asio::buffer(h2_in_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      if (ec || nghttp2_session_mem_recv(self->h2_, reinterpret_cast<const uint8_t*>(self->h2_in_.data()), n) < 0) {
        self->h2_failed_ = self->h2_closing_ = true;
        return self->h2_end();
      }
      self->h2_pump();
      if (self->h2_closing_) return self->h2_end();
      self->h2_read();
    });
  }

  // The connection is left once no write is under way on it (the stream object is replaced).
  void h2_end() {
    if (h2_writing_) return;
    if (h2_failed_) return error();
    if (o_.mode == "idle") return hold();
    done_with_connection();
  }

  void h2_pump() {
    if (h2_writing_) return;
    h2_out_.clear();
    for (;;) {
      const uint8_t* data = nullptr;
      const auto n = nghttp2_session_mem_send(h2_, &data);
      if (n <= 0) break;
      h2_out_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (h2_out_.empty()) return;
    h2_writing_ = true;
    asio::async_write(*stream_, asio::buffer(h2_out_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->h2_writing_ = false;
      if (self->h2_closing_) return self->h2_end();
      if (ec) return;  // the read side sees the failure
      self->h2_pump();
    });
  }

  // idle: one request, then the connection stays open and silent until the end.
  void hold() {
    if (on_hold_) on_hold_();
    hold_ = std::make_unique<asio::steady_timer>(io_, end_);
    hold_->async_wait([self = shared_from_this()](beast::error_code) {
      beast::error_code ec;
      self->stream_->next_layer().close(ec);
    });
  }

  void done_with_connection() {
    SSL* s = stream_->native_handle();
    if (o_.mode == "resume") {
      SSL_SESSION* sess = SSL_get1_session(s);
      if (sess) {
        if (session_) SSL_SESSION_free(session_);
        session_ = sess;
      }
    }
    // Without a close_notify, SSL_free would mark the session "bad" and never offer it again;
    // the load tool skips the round trip of a real shutdown, so it says it was done.
    SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    beast::error_code ec;
    stream_->next_layer().shutdown(tcp::socket::shutdown_both, ec);
    stream_->next_layer().close(ec);
    buf_.consume(buf_.size());
    connect();
  }

  void error() {
    ++stats_.errors;
    beast::error_code ec;
    if (stream_) stream_->next_layer().close(ec);
    buf_.consume(buf_.size());
    if (Clock::now() < end_) asio::post(io_, [self = shared_from_this()] { self->connect(); });
  }

  asio::io_context& io_;
  ssl::context& ctx_;
  tcp::endpoint ep_;
  const Options& o_;
  const std::vector<Identity>& ids_;
  X509* issuer_;
  int next_id_;
  Stats& stats_;
  Clock::time_point end_, started_;
  std::string target_;
  std::string request_text_;  // keep-alive: the request, serialised once
  std::unique_ptr<ssl::stream<tcp::socket>> stream_;
  beast::flat_buffer buf_;
  http::request<http::empty_body> req_;
  http::response<http::string_body> res_;
  SSL_SESSION* session_ = nullptr;
  std::unique_ptr<asio::steady_timer> hold_;
  std::function<void()> on_hold_;
  nghttp2_session* h2_ = nullptr;
  std::array<char, 16384> h2_in_{};
  std::string h2_out_;
  std::unordered_map<int32_t, Clock::time_point> h2_started_;
  int h2_open_ = 0;
  bool h2_writing_ = false, h2_closing_ = false, h2_failed_ = false;

 public:
  ~Worker() {
    if (h2_) nghttp2_session_del(h2_);
  }
};

std::uint32_t percentile(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  std::size_t i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"certgate-load: mutual-TLS load with a pool of distinct client certificates"};
  app.add_option("--url", o.url, "https://HOST:PORT/path (numeric host)");
  app.add_option("--ca", o.ca, "CA file to verify the server with (omit: no verification)");
  app.add_option("--issuer-cert", o.issuer_cert, "issuing CA certificate for the client certificates")->required();
  app.add_option("--issuer-key", o.issuer_key, "its private key")->required();
  app.add_option("--clients", o.clients, "distinct client certificates (default 1000)");
  app.add_option("--mode", o.mode, "full | resume | keepalive | idle (one request, then hold the connection open)")
      ->check(CLI::IsMember({"full", "resume", "keepalive", "idle"}));
  app.add_option("--tls", o.tls, "1.2 | 1.3")->check(CLI::IsMember({"1.2", "1.3"}));
  app.add_option("--connections", o.connections, "concurrent connections (default 32)");
  app.add_option("--duration", o.duration, "seconds (default 10)");
  app.add_option("--cpu", o.cpu, "pin to this CPU");
  std::string version = "1.1";
  app.add_option("--http", version, "HTTP version of the requests: 1.1 | 1.0 | 2 (default 1.1)")
      ->check(CLI::IsMember({"1.0", "1.1", "2"}));
  app.add_option("--streams", o.streams, "HTTP/2: requests in flight per connection (default 1)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--requests", o.max_requests, "stop after this many answers (default: run for --duration)");
  app.add_option("--sni", o.sni, "server name and Host (default localhost)");
  CLI11_PARSE(app, argc, argv);
  o.http = version == "1.0" ? 10 : version == "2" ? 20 : 11;
  if (o.http == 20 && o.mode == "resume") {
    std::cerr << "certgate-load: --http 2 runs the full, keepalive and idle modes\n";
    return 2;
  }

  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");
  }
  std::vector<Identity> ids;
  X509* issuer = nullptr;
  try {
    ids = make_clients(o.issuer_cert, o.issuer_key, std::max(1, o.clients));
    std::string c = read_all(o.issuer_cert);
    BIO* b = BIO_new_mem_buf(c.data(), static_cast<int>(c.size()));
    issuer = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
  } catch (const std::exception& e) {
    std::cerr << "certgate-load: " << e.what() << "\n";
    return 2;
  }
  std::string hostport = o.url.substr(8, o.url.find('/', 8) - 8);
  auto colon = hostport.rfind(':');
  tcp::endpoint ep(asio::ip::make_address(hostport.substr(0, colon)),
                   static_cast<unsigned short>(std::stoi(hostport.substr(colon + 1))));

  // The same OpenSSL shortcut as the server (src/tls/record_ciphers.hpp): the load tool's CPU
  // per request bounds the rate it can drive.
  certgate::tls::use_builtin_record_ciphers();
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX* raw = ctx.native_handle();
  int v = o.tls == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
  SSL_CTX_set_min_proto_version(raw, v);
  SSL_CTX_set_max_proto_version(raw, v);
  if (o.mode == "full") {
    SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(raw, SSL_OP_NO_TICKET);
  } else {
    SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_CLIENT);
  }
  if (o.http == 20) SSL_CTX_set_alpn_protos(raw, reinterpret_cast<const unsigned char*>("\x02h2"), 3);
  if (!o.ca.empty()) {
    ctx.load_verify_file(o.ca);
    ctx.set_verify_mode(ssl::verify_peer);
  }

  asio::io_context io(1);
  Stats stats;
  const auto start = Clock::now();
  const auto end = start + std::chrono::milliseconds(static_cast<long>(o.duration * 1000));
  // Idle connections open a few at a time (each held one starts the next), so the server's
  // memory shows what they hold, not the peak of a thousand handshakes at once.
  int opened = 0;
  std::function<void()> open_next = [&] {
    if (opened < o.connections)
      std::make_shared<Worker>(io, ctx, ep, o, ids, issuer, opened++, stats, end, open_next)->start();
  };
  if (o.mode == "idle") {
    for (int i = 0; i < std::min(o.connections, 32); ++i) open_next();
  } else {
    for (int i = 0; i < o.connections; ++i)
      std::make_shared<Worker>(io, ctx, ep, o, ids, issuer, i, stats, end)->start();
  }
  io.run();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("mode=%s tls=%s http=%s streams=%d connections=%d clients=%d seconds=%.2f requests=%llu rps=%.1f handshakes_per_s=%.1f "
              "resumed=%llu errors=%llu p50_us=%u p90_us=%u p99_us=%u\n",
              o.mode.c_str(), o.tls.c_str(), version.c_str(), o.streams, o.connections, o.clients, secs,
              static_cast<unsigned long long>(stats.requests), static_cast<double>(stats.requests) / secs,
              static_cast<double>(stats.handshakes) / secs, static_cast<unsigned long long>(stats.resumed),
              static_cast<unsigned long long>(stats.errors), percentile(stats.latency_us, 0.5),
              percentile(stats.latency_us, 0.9), percentile(stats.latency_us, 0.99));
  return stats.requests > 0 ? 0 : 1;
}
