// The head certgate forwards to a backend and the identity headers in each format (X-ARR-
// ClientCert, RFC 9440 Client-Cert, Envoy's XFCC, the X-Client-Cert-* fields) for an arbitrary
// client certificate and request. Input: a 2-byte big-endian length, that many bytes of DER
// (the leaf; also sent as its own chain), then the request: a target line and "Name: value"
// lines. Whatever the certificate holds, every header stays one printable line.
#include "auth/verdict.hpp"
#include "fuzz_util.hpp"
#include "http/forward.hpp"
#include "pki/openssl_ptr.hpp"

#include <openssl/err.h>

#include <algorithm>

using namespace certgate;

namespace {

bool one_line(std::string_view v) {
  for (unsigned char c : v)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

// Beast refuses CR, LF and NUL in a field and a name that is not a token: what reaches the
// handler never has them, so neither does the harness's request.
bool acceptable(std::string_view name, std::string_view value) {
  if (name.empty() || !one_line(value)) return false;
  for (unsigned char c : name)
    if (c <= 0x20 || c >= 0x7f || c == ':') return false;
  return true;
}

// Envoy's reading of X-Forwarded-Client-Cert: elements split on ',' and pairs on ';' outside
// double quotes (a backslash escapes inside them). Whatever a certificate's names hold, what
// certgate writes for one certificate is one element with one Hash.
bool one_xfcc_element_one_hash(std::string_view v) {
  bool quoted = false;
  std::size_t hashes = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= v.size(); ++i) {
    if (i < v.size() && quoted && v[i] == '\\') {
      ++i;
      continue;
    }
    if (i < v.size() && v[i] == '"') quoted = !quoted;
    if (i < v.size() && quoted) continue;
    if (i < v.size() && v[i] == ',') return false;
    if (i == v.size() || v[i] == ';') {
      if (v.substr(start, i - start).starts_with("Hash=")) ++hashes;
      start = i + 1;
    }
  }
  return !quoted && hashes == 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t der_len = std::min<std::size_t>(size - 2, (std::size_t(data[0]) << 8) | data[1]);
  const unsigned char* p = data + 2;
  pki::X509Ptr leaf(d2i_X509(nullptr, &p, static_cast<long>(der_len)));
  ERR_clear_error();
  std::string_view rest = fuzz::bytes(data + 2 + der_len, size - 2 - der_len);

  http::Request req;
  req.method = "GET";
  auto [target, headers] = fuzz::split(rest, "\n");
  req.target = "/";
  if (!target.empty() && std::all_of(target.begin(), target.end(), [](unsigned char c) { return c > 0x20 && c != 0x7f; }))
    req.target = std::string(target);
  while (!headers.empty()) {
    auto [line, more] = fuzz::split(headers, "\n");
    headers = more;
    auto [name, value] = fuzz::split(line, ":");
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (acceptable(name, value)) req.headers.push_back({std::string(name), std::string(value)});
  }

  pki::X509StackView chain(sk_X509_new_null());
  if (leaf) sk_X509_push(chain.get(), leaf.get());
  static const auto backend = *config::parse_backend("http://127.0.0.1:8080/app");
  auth::Outcome who;
  who.user = std::string(req.header("X-Fuzz-User"));
  who.auth_method = "Certificate";
  who.certificate = true;  // as if the decision had validated it: the encoders see everything
  for (const char* format : {"x-arr-clientcert", "rfc9440", "xfcc"}) {
    config::Forward cfg;
    cfg.client_cert = format;
    cfg.cert_fields = true;
    for (bool preserve_host : {false, true}) {
      http::ForwardInput in{req, "/app/x", "backend.test", cfg, backend, preserve_host, "::1", true, who,
                            leaf.get(), chain.get()};
      for (const auto& h : http::identity_headers(in)) {
        FUZZ_CHECK(acceptable(h.name, h.value));
        for (unsigned char c : h.value) FUZZ_CHECK(c >= 0x20 && c != 0x7f);
        if (h.name == "X-Forwarded-Client-Cert") FUZZ_CHECK(one_xfcc_element_one_hash(h.value));
      }
      const std::string head = http::forwarded_head(in);
      // Lines end in CRLF and nowhere else.
      std::size_t pos = 0, lines = 0;
      while (pos < head.size()) {
        auto crlf = head.find("\r\n", pos);
        FUZZ_CHECK(crlf != std::string::npos);
        FUZZ_CHECK(one_line(std::string_view(head).substr(pos, crlf - pos)));
        pos = crlf + 2;
        ++lines;
      }
      FUZZ_CHECK(lines >= 2);
    }
  }
  return 0;
}
