// certgate-handshake-floor: what a full mutual-TLS handshake costs the server in OpenSSL alone,
// with no sockets, no event loop and no server around it: a client and a server SSL object joined
// by an in-memory BIO pair, the server with the bench site's certificate and key, the client with
// a fresh ECDSA P-256 certificate from the bench PKI's issuing CA (as certgate-load makes them).
// Only the server's calls are timed (thread CPU time), SSL_new and SSL_free included: key
// exchange, the server's signature, decoding the client's certificates and checking its
// CertificateVerify, and (--verify chain) the chain verification nginx does in the handshake.
// This is the floor certgate's CPU per full handshake can approach (bench/README.md).
//
//   certgate-handshake-floor --cert server-chain.pem --key server.key --ca root-ca.pem
//       --issuer-cert issuing-ca.pem --issuer-key issuing-ca.key --tls 1.3 --handshakes 2000
#include "client_cert.hpp"
#include "pki/key_decoding.hpp"

#include <CLI/CLI.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <time.h>
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>  // under valgrind --tool=callgrind --collect-atstart=no: the server's instructions alone
#else
#define CALLGRIND_TOGGLE_COLLECT
#endif

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace {

double thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

template <class T>
T* check(T* p, const char* what) {
  if (!p) throw std::runtime_error(what);
  return p;
}

X509* read_cert(const std::string& path) {
  BIO* b = check(BIO_new_file(path.c_str(), "r"), "cannot read a certificate file");
  X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  return check(x, "no certificate in the file");
}

EVP_PKEY* read_key(const std::string& path) {
  BIO* b = check(BIO_new_file(path.c_str(), "r"), "cannot read a key file");
  EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  return check(k, "no private key in the file");
}

// As certgate does: OpenSSL verifies no chain in the handshake (certgate validates it after,
// once per chain and configuration, and remembers the result).
int accept_any_chain(X509_STORE_CTX*, void*) { return 1; }

}  // namespace

int main(int argc, char** argv) {
  std::string cert, key, ca, issuer_cert, issuer_key, tls = "1.3", verify = "none";
  int handshakes = 2000;
  bool builtin = true;
  CLI::App app{"certgate-handshake-floor: server CPU per full mutual-TLS handshake, in memory"};
  app.add_option("--cert", cert, "server certificate chain (PEM)")->required();
  app.add_option("--key", key, "server private key")->required();
  app.add_option("--ca", ca, "CA the client certificates chain to")->required();
  app.add_option("--issuer-cert", issuer_cert, "issuing CA certificate for the client certificate")->required();
  app.add_option("--issuer-key", issuer_key, "its private key")->required();
  app.add_option("--tls", tls, "1.2 | 1.3")->check(CLI::IsMember({"1.2", "1.3"}));
  app.add_option("--verify", verify,
                 "none: the client's certificate is decoded and its CertificateVerify checked (certgate "
                 "validates a chain once and remembers it); chain: OpenSSL also verifies the chain (nginx)")
      ->check(CLI::IsMember({"none", "chain"}));
  app.add_option("--handshakes", handshakes, "how many (default 2000)");
  app.add_option("--builtin-key-methods", builtin, "decode keys with OpenSSL's built-in methods, as certgate does (default true)");
  CLI11_PARSE(app, argc, argv);
  try {
    // The client's material first: the built-in key methods are for what the server decodes.
    X509* issuer = read_cert(issuer_cert);
    EVP_PKEY* ikey = read_key(issuer_key);
    EVP_PKEY* client_key = check(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), "keygen");
    X509* client_cert = certgate::bench::make_client_cert(issuer, ikey, client_key, 4242, "floor-client", 1);
    if (builtin && !certgate::pki::use_builtin_key_methods())
      std::fprintf(stderr, "certgate-handshake-floor: built-in key methods unavailable\n");
    const int version = tls == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX* server = check(SSL_CTX_new(TLS_server_method()), "SSL_CTX_new");
    SSL_CTX_set_min_proto_version(server, version);
    SSL_CTX_set_max_proto_version(server, version);
    if (SSL_CTX_use_certificate_chain_file(server, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(server, key.c_str(), SSL_FILETYPE_PEM) != 1)
      throw std::runtime_error("cannot load the server certificate and key");
    SSL_CTX_set_session_cache_mode(server, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(server, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(server, 0);
    SSL_CTX_set_verify(server, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    if (verify == "none") SSL_CTX_set_cert_verify_callback(server, accept_any_chain, nullptr);
    if (SSL_CTX_load_verify_locations(server, ca.c_str(), nullptr) != 1) throw std::runtime_error("cannot load --ca");
    SSL_CTX_set_client_CA_list(server, SSL_load_client_CA_file(ca.c_str()));

    SSL_CTX* client = check(SSL_CTX_new(TLS_client_method()), "SSL_CTX_new");
    SSL_CTX_set_min_proto_version(client, version);
    SSL_CTX_set_max_proto_version(client, version);
    SSL_CTX_set_session_cache_mode(client, SSL_SESS_CACHE_OFF);
    SSL_CTX_use_certificate(client, client_cert);
    SSL_CTX_use_PrivateKey(client, client_key);
    SSL_CTX_add1_chain_cert(client, issuer);
    SSL_CTX_set_verify(client, SSL_VERIFY_NONE, nullptr);  // the server's side is measured

    double server_us = 0, client_us = 0;
    // The server's share per step: SSL_new/SSL_free, then each of its SSL_do_handshake calls
    // (TLS 1.3: ClientHello to server Finished; then the client's Certificate, CertificateVerify
    // and Finished).
    double step_us[4] = {0, 0, 0, 0};
    for (int i = 0; i < handshakes; ++i) {
      CALLGRIND_TOGGLE_COLLECT;
      double t = thread_cpu_us();
      SSL* s = SSL_new(server);
      step_us[0] += thread_cpu_us() - t;
      CALLGRIND_TOGGLE_COLLECT;
      SSL* c = SSL_new(client);
      BIO *sb = nullptr, *cb = nullptr;
      BIO_new_bio_pair(&sb, 0, &cb, 0);
      SSL_set_bio(s, sb, sb);
      SSL_set_bio(c, cb, cb);
      SSL_set_accept_state(s);
      SSL_set_connect_state(c);
      bool s_done = false, c_done = false;
      int server_calls = 0;
      for (int round = 0; round < 20 && !(s_done && c_done); ++round) {
        if (!c_done) {
          t = thread_cpu_us();
          const int r = SSL_do_handshake(c);
          client_us += thread_cpu_us() - t;
          if (r == 1) c_done = true;
          else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ) throw std::runtime_error("client handshake failed");
        }
        if (!s_done && BIO_ctrl_pending(sb) > 0) {  // something from the client to read
          CALLGRIND_TOGGLE_COLLECT;
          t = thread_cpu_us();
          const int r = SSL_do_handshake(s);
          step_us[std::min(++server_calls, 3)] += thread_cpu_us() - t;
          CALLGRIND_TOGGLE_COLLECT;
          if (r == 1) s_done = true;
          else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ) {
            ERR_print_errors_fp(stderr);
            throw std::runtime_error("server handshake failed");
          }
        }
      }
      if (!s_done || !c_done) throw std::runtime_error("the handshake did not finish");
      SSL_free(c);
      CALLGRIND_TOGGLE_COLLECT;
      t = thread_cpu_us();
      SSL_free(s);
      step_us[0] += thread_cpu_us() - t;
      CALLGRIND_TOGGLE_COLLECT;
    }
    for (double v : step_us) server_us += v;
    std::printf("tls=%s verify=%s builtin_key_methods=%s handshakes=%d server_cpu_us_per_handshake=%.1f "
                "client_cpu_us_per_handshake=%.1f new_free_us=%.1f first_flight_us=%.1f second_flight_us=%.1f other_us=%.1f\n",
                tls.c_str(), verify.c_str(), builtin ? "on" : "off", handshakes, server_us / handshakes,
                client_us / handshakes, step_us[0] / handshakes, step_us[1] / handshakes, step_us[2] / handshakes,
                step_us[3] / handshakes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "certgate-handshake-floor: %s\n", e.what());
    return 2;
  }
  return 0;
}
