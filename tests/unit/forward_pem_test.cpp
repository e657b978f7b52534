// client_cert = "pem" (issue 18 item 8): the validated leaf as one header line in the form
// Tomcat's SSLValve reads, the chain in its own header, and client copies of both never passed on.
#include "config/config.hpp"
#include "http/forward.hpp"
#include "pki/openssl_ptr.hpp"
#include "test_util.hpp"

#include <openssl/pem.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace certgate::http {
namespace {

pki::X509Ptr load_cert(const std::string& name) {
  FILE* f = std::fopen(test::pki(name).c_str(), "r");
  X509* c = f ? PEM_read_X509(f, nullptr, nullptr, nullptr) : nullptr;
  if (f) std::fclose(f);
  return pki::X509Ptr(c);
}

std::string pem_of(X509* c) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, c);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

// What SSLValve does with the header value (Tomcat 10 SSLValve.invoke): spaces back to
// newlines, the 28 characters of "-----BEGIN CERTIFICATE-----\n" and the 26 of
// "\n-----END CERTIFICATE-----" cut off, and the two lines put back.
std::string as_sslvalve_reads(std::string v) {
  for (char& c : v)
    if (c == ' ') c = '\n';
  return "-----BEGIN CERTIFICATE-----\n" + v.substr(28, v.size() - 28 - 26) + "\n-----END CERTIFICATE-----\n";
}

std::string header_value(const std::string& head, const std::string& name) {
  const std::string key = "\r\n" + name + ": ";
  auto at = head.find(key);
  if (at == std::string::npos) return "<absent>";
  at += key.size();
  return head.substr(at, head.find("\r\n", at) - at);
}

struct PemHead {
  Request req;
  config::Forward cfg;
  config::BackendUrl backend = *config::parse_backend("http://127.0.0.1:8080");
  auth::Outcome who;
  pki::X509Ptr leaf = load_cert("alice.pem");
  pki::X509Ptr intermediate = load_cert("issuing-ca.pem");
  STACK_OF(X509)* chain = sk_X509_new_null();

  PemHead() {
    cfg.client_cert = "pem";
    req.method = "GET";
    who.user = "alice";
    who.auth_method = "Certificate";
    who.certificate = true;
  }
  ~PemHead() { sk_X509_free(chain); }
  std::string build() {
    ForwardInput in{req, "/x", "localhost", cfg, backend, false, "127.0.0.1", true, who, leaf.get(), chain};
    return forwarded_head(in);
  }
};

TEST(ForwardPem, LeafIsOneLineThatSslValveTurnsBackIntoThePem) {
  PemHead h;
  ASSERT_TRUE(h.leaf);
  const std::string v = header_value(h.build(), "ssl_client_cert");
  ASSERT_NE(v, "<absent>");
  EXPECT_EQ(v.find('\n'), std::string::npos);
  EXPECT_EQ(v.rfind("-----BEGIN CERTIFICATE----- MII", 0), 0u) << v;
  EXPECT_EQ(v.substr(v.size() - 26), " -----END CERTIFICATE-----") << v;
  EXPECT_EQ(as_sslvalve_reads(v), pem_of(h.leaf.get()));
}

TEST(ForwardPem, ChainGoesInItsOwnHeaderOnlyWhenTheClientSentOne) {
  PemHead h;
  EXPECT_EQ(header_value(h.build(), "ssl_client_cert_chain"), "<absent>");
  ASSERT_TRUE(h.intermediate);
  sk_X509_push(h.chain, h.intermediate.get());
  sk_X509_push(h.chain, h.intermediate.get());
  const std::string v = header_value(h.build(), "ssl_client_cert_chain");
  const std::string one = header_value(h.build(), "ssl_client_cert");
  ASSERT_NE(v, "<absent>");
  const auto comma = v.find(", ");
  ASSERT_NE(comma, std::string::npos) << v;
  EXPECT_EQ(as_sslvalve_reads(v.substr(0, comma)), pem_of(h.intermediate.get()));
  EXPECT_EQ(v.substr(comma + 2), v.substr(0, comma));
  EXPECT_NE(one, v.substr(0, comma));
  h.cfg.client_cert_chain_header = "";
  EXPECT_EQ(h.build().find("-----BEGIN CERTIFICATE----- ", h.build().find(one) + one.size()), std::string::npos);
}

TEST(ForwardPem, HeaderNamesAreConfigurable) {
  PemHead h;
  h.cfg.client_cert_header = "X-SSL-Cert";
  const std::string head = h.build();
  EXPECT_NE(header_value(head, "X-SSL-Cert"), "<absent>");
  EXPECT_EQ(header_value(head, "ssl_client_cert"), "<absent>");
}

TEST(ForwardPem, NothingWithoutAValidatedCertificate) {
  PemHead h;
  h.who.certificate = false;
  EXPECT_EQ(h.build().find("BEGIN CERTIFICATE"), std::string::npos);
}

TEST(ForwardPem, ClientCopiesAreStrippedInEveryFormatAndSpelling) {
  for (const char* fmt : {"pem", "x-arr-clientcert", "none"}) {
    PemHead h;
    h.cfg.client_cert = fmt;
    h.cfg.underscores_in_headers = true;  // otherwise '_' names are dropped before this check
    h.cfg.client_cert_header = "ssl_client_cert";
    h.req.headers = {{"ssl_client_cert", "-----BEGIN CERTIFICATE----- FORGED -----END CERTIFICATE-----"},
                     {"SSL-Client-Cert", "FORGED"}, {"SSL_CLIENT_CERT_CHAIN", "FORGED"},
                     {"Ssl-Client-Cert-Chain", "FORGED"}, {"My_Header", "kept"}};
    const std::string head = h.build();
    EXPECT_EQ(head.find("FORGED"), std::string::npos) << fmt << ": " << head;
    EXPECT_NE(head.find("My_Header: kept"), std::string::npos) << fmt;
  }
}

}  // namespace
}  // namespace certgate::http

namespace certgate::config {
namespace {

TEST(ConfigPem, HeaderKeysHaveDefaultsAndRefuseBadNames) {
  test::TempDir dir;
  const std::string site = "[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                           "certificate = \"server.pem\"\n[sites.forward]\n";
  const auto ok = load(dir.write("a.toml", site + "client_cert = \"pem\"\n")).sites[0].forward;
  EXPECT_EQ(ok.client_cert, "pem");
  EXPECT_EQ(ok.client_cert_header, "ssl_client_cert");
  EXPECT_EQ(ok.client_cert_chain_header, "ssl_client_cert_chain");
  try {
    load(dir.write("b.toml", site + "client_cert_header = \"ssl client cert\"\n"));
    FAIL() << "a header name with spaces loaded";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("b.toml:7:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sites[0].forward.client_cert_header: not a header name"),
              std::string::npos) << e.what();
  }
  for (const char* framing : {"Content-Length", "transfer_encoding", "HOST"}) {
    try {
      load(dir.write("d.toml", site + "client_cert_chain_header = \"" + framing + "\"\n"));
      FAIL() << framing << " loaded as a certificate header";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("client_cert_chain_header: \"" + std::string(framing) + "\" cannot carry a certificate"),
                std::string::npos) << e.what();
    }
  }
  try {
    load(dir.write("c.toml", site + "client_cert_header = \"\"\n"));
    FAIL() << "an empty client_cert_header loaded";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("client_cert_header"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace certgate::config
