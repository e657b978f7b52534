#include "http/forward.hpp"

#include "pki/x509_text.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include <algorithm>

namespace certgate::http {
namespace {

std::string b64(const unsigned char* p, std::size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
  out.resize(static_cast<std::size_t>(len));
  return out;
}

std::string der(X509* c) {
  unsigned char* p = nullptr;
  int n = i2d_X509(c, &p);
  std::string out(reinterpret_cast<char*>(p), static_cast<std::size_t>(n > 0 ? n : 0));
  OPENSSL_free(p);
  return out;
}

std::string der_b64(X509* c) {
  std::string d = der(c);
  return b64(reinterpret_cast<const unsigned char*>(d.data()), d.size());
}

std::string pem(X509* c) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, c);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  std::string out;
  for (unsigned i = 0; i < n; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

std::string url_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}

// The PEM on one line, newlines as spaces, no trailing space: what Tomcat's SSLValve reads
// (it turns the spaces back into newlines between the BEGIN and END lines), and what Apache
// sends with `RequestHeader set SSL_CLIENT_CERT "%{SSL_CLIENT_CERT}s"`.
std::string pem_one_line(X509* c) {
  std::string out = pem(c);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  for (char& ch : out)
    if (ch == '\n' || ch == '\r') ch = ' ';
  return out;
}

// Header values must stay on one line and be printable.
std::string clean(std::string_view v) {
  std::string out;
  for (unsigned char c : v) out += (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
  return out;
}

// XFCC quoted value: backslash-escape quotes and backslashes.
std::string xfcc_quote(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// An XFCC value that could end its element or pair early is quoted, as Envoy does.
std::string xfcc_value(std::string_view v) {
  return v.find_first_of(";,\"") == std::string_view::npos ? std::string(v) : xfcc_quote(v);
}

std::vector<std::string> sans(X509* c, int type) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(c, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type != type) continue;
    const ASN1_STRING* s = type == GEN_URI ? gn->d.uniformResourceIdentifier : gn->d.dNSName;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

// Header names as CGI-style backends compare them: case-insensitive, '_' the same as '-'.
bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto fold = [](char c) { return c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
    if (fold(a[i]) != fold(b[i])) return false;
  }
  return true;
}

bool listed(std::string_view connection_header, std::string_view name) {
  std::size_t pos = 0;
  while (pos < connection_header.size()) {
    auto comma = connection_header.find(',', pos);
    if (comma == std::string_view::npos) comma = connection_header.size();
    std::string_view token = connection_header.substr(pos, comma - pos);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    if (same_name(token, name)) return true;
    pos = comma + 1;
  }
  return false;
}

// A Cookie header without the pairs named in `names`: "a=1; b=2" less b is "a=1".
std::string without_cookies(std::string_view header, const std::array<std::string_view, 2>& names) {
  std::string out;
  while (!header.empty()) {
    const auto semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    if (pair.empty()) continue;
    const std::string_view name = pair.substr(0, pair.find('='));
    if (std::any_of(names.begin(), names.end(), [&](std::string_view n) { return !n.empty() && name == n; })) continue;
    if (!out.empty()) out += "; ";
    out += pair;
  }
  return out;
}

}  // namespace

bool is_identity_header(std::string_view n, const config::Forward& cfg) {
  static const char* kAlways[] = {"X-ARR-ClientCert", "Client-Cert", "Client-Cert-Chain",
                                  "X-Forwarded-Client-Cert", "X-Client-Cert-Subject",
                                  "X-Client-Cert-Issuer", "X-Client-Cert-Serial",
                                  "X-Client-Cert-Not-After", "X-Client-Cert-Fingerprint",
                                  "X-Certgate-Assertion", "X-Forwarded-For", "X-Forwarded-Proto",
                                  "X-Forwarded-Host", "Forwarded", "X-Remote-User",
                                  "X-Remote-Auth-Type"};
  for (const char* h : kAlways)
    if (same_name(n, h)) return true;
  // The PEM header names are stripped whatever client_cert says: a backend configured for them
  // (Tomcat's SSLValve) must never read one the client wrote.
  return (!cfg.user_header.empty() && same_name(n, cfg.user_header)) ||
         (!cfg.auth_type_header.empty() && same_name(n, cfg.auth_type_header)) ||
         same_name(n, cfg.client_cert_header) ||
         (!cfg.client_cert_chain_header.empty() && same_name(n, cfg.client_cert_chain_header));
}

bool is_hop_by_hop(std::string_view n, std::string_view connection_header) {
  static const char* kHop[] = {"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
                               "Transfer-Encoding", "Upgrade", "Proxy-Authenticate",
                               "Proxy-Authorization", "Content-Length", "Expect"};
  for (const char* h : kHop)
    if (same_name(n, h)) return true;
  return listed(connection_header, n);
}

std::vector<Header> identity_headers(const ForwardInput& in) {
  std::vector<Header> out;
  const config::Forward& f = in.cfg;
  if (!f.user_header.empty() && !in.who.user.empty()) out.push_back({f.user_header, clean(in.who.user)});
  if (!f.auth_type_header.empty() && !in.who.auth_method.empty())
    out.push_back({f.auth_type_header, clean(in.who.auth_method)});
  // Only a certificate this request's decision validated and mapped says who the caller is.
  X509* const leaf = in.who.certificate ? in.leaf : nullptr;
  if (leaf) {
    const std::string leaf_der = der(leaf);
    if (f.client_cert == "x-arr-clientcert") {
      out.push_back({"X-ARR-ClientCert", der_b64(leaf)});
    } else if (f.client_cert == "rfc9440") {
      out.push_back({"Client-Cert", ":" + der_b64(leaf) + ":"});
      std::string chain;
      for (int i = 0; in.chain && i < sk_X509_num(in.chain); ++i)
        chain += (chain.empty() ? ":" : ", :") + der_b64(sk_X509_value(in.chain, i)) + ":";
      if (!chain.empty()) out.push_back({"Client-Cert-Chain", chain});
    } else if (f.client_cert == "xfcc") {
      std::string v = "Hash=" + sha256_hex(leaf_der) + ";Cert=" + xfcc_quote(url_encode(pem(leaf)));
      std::string chain = pem(leaf);
      for (int i = 0; in.chain && i < sk_X509_num(in.chain); ++i) chain += pem(sk_X509_value(in.chain, i));
      v += ";Chain=" + xfcc_quote(url_encode(chain));
      v += ";Subject=" + xfcc_quote(clean(pki::subject_text(leaf)));
      for (const auto& u : sans(leaf, GEN_URI)) v += ";URI=" + xfcc_value(clean(u));
      for (const auto& d : sans(leaf, GEN_DNS)) v += ";DNS=" + xfcc_value(clean(d));
      out.push_back({"X-Forwarded-Client-Cert", v});
    } else if (f.client_cert == "pem") {
      out.push_back({f.client_cert_header, pem_one_line(leaf)});
      std::string chain;
      for (int i = 0; in.chain && i < sk_X509_num(in.chain); ++i)
        chain += (chain.empty() ? "" : ", ") + pem_one_line(sk_X509_value(in.chain, i));
      if (!f.client_cert_chain_header.empty() && !chain.empty())
        out.push_back({f.client_cert_chain_header, chain});
    }
    if (f.cert_fields) {
      out.push_back({"X-Client-Cert-Subject", clean(pki::subject_text(leaf))});
      out.push_back({"X-Client-Cert-Issuer", clean(pki::issuer_text(leaf))});
      out.push_back({"X-Client-Cert-Serial", pki::serial_hex(leaf)});
      out.push_back({"X-Client-Cert-Not-After", http_date(pki::to_unix(X509_get0_notAfter(leaf)))});
      out.push_back({"X-Client-Cert-Fingerprint", sha256_hex(leaf_der)});
    }
  }
  if (!in.assertion.empty()) out.push_back({"X-Certgate-Assertion", in.assertion});
  const std::string host(in.host);
  const std::string ip(in.client_ip);
  out.push_back({"X-Forwarded-For", ip});
  out.push_back({"X-Forwarded-Proto", in.https ? "https" : "http"});
  if (!host.empty()) out.push_back({"X-Forwarded-Host", clean(host)});
  std::string fwd_for = ip.find(':') != std::string::npos ? "\"[" + ip + "]\"" : ip;
  out.push_back({"Forwarded", "for=" + fwd_for + ";proto=" + (in.https ? "https" : "http") +
                                  (host.empty() ? "" : ";host=" + xfcc_quote(clean(host)))});
  return out;
}

std::string forwarded_head(const ForwardInput& in) {
  std::string head = in.req.method + " " + in.backend.prefix + std::string(in.target) + " HTTP/1.1\r\n";
  const std::string_view connection = in.req.header("Connection");
  for (const auto& h : in.req.headers) {
    // CGI, WSGI, PHP and Rack turn '-' and '_' into the same variable name: X_Remote_User
    // would reach them as X-Remote-User (nginx drops such names by default too).
    if (!in.cfg.underscores_in_headers && h.name.find('_') != std::string::npos) continue;
    if (is_identity_header(h.name, in.cfg)) continue;  // never trust what the client says here
    if (is_hop_by_hop(h.name, connection)) continue;
    if (in.strip_authorization && same_name(h.name, "Authorization")) continue;
    if (iequals(h.name, "Host")) continue;  // the one below names the authority the policy saw
    if (iequals(h.name, "Cookie")) {
      if (std::string rest = without_cookies(h.value, in.own_cookies); !rest.empty()) head += "Cookie: " + rest + "\r\n";
      continue;
    }
    head += h.name + ": " + h.value + "\r\n";
  }
  head += "Host: " + (in.preserve_host && !in.host.empty() ? std::string(in.host) : in.backend.authority) + "\r\n";
  for (const auto& h : identity_headers(in)) head += h.name + ": " + h.value + "\r\n";
  if (in.websocket) {
    head += "Connection: Upgrade\r\nUpgrade: " + std::string(in.req.header("Upgrade")) + "\r\n";
  } else {
    head += "Connection: keep-alive\r\n";
  }
  return head;
}

}  // namespace certgate::http
