// Identity toward the backend (issue 13, items 1-5), table-driven: the target a backend receives,
// Host keys, absolute-form targets, header names with '_', and the certificate the forwarded head
// may carry.
#include "config/config.hpp"
#include "http/forward.hpp"
#include "http/path.hpp"
#include "pki/openssl_ptr.hpp"
#include "test_util.hpp"

#include <openssl/pem.h>

#include <gtest/gtest.h>

#include <cstdio>

namespace certgate::http {
namespace {

std::string forwarded(std::string_view target) {
  auto n = normalize_target(target);
  if (!n) return "<400 target>";
  auto f = forward_target(*n);
  return f ? *f : "<400 ambiguous>";
}

TEST(ForwardTarget, IsThePathThePolicyMatchedReEncoded) {
  const struct { const char* in; const char* out; } cases[] = {
      {"/", "/"},
      {"/a/./b/../c//d/", "/a/c/d/"},
      {"/a%2fb", "/a/b"},
      {"/a%5cb", "/a/b"},
      {"/a\\b", "/a/b"},
      {"/x/%2e%2e/secure", "/secure"},
      {"/sp%20ace/caf%c3%a9", "/sp%20ace/caf%C3%A9"},
      {"/%7Eu/(a)!$&'*+,=:@-._~", "/~u/(a)!$&'*+,=:@-._~"},
      {"/h%23/q%3F", "/h%23/q%3F"},
      {"/app/secure;jsessionid=1/x", "/app/secure%3Bjsessionid=1/x"},
      {"/a?q=..;/x&y=%2e%2e", "/a?q=..;/x&y=%2e%2e"},
      {"/a?", "/a?"},
      {"/a/..%2f..%2fb", "<400 target>"},
      {"/a#frag", "<400 target>"},
      {"/a?x#frag", "<400 target>"},
      {"/app/x/..;/secure", "<400 ambiguous>"},
      {"/app/x/..;a=b/secure", "<400 ambiguous>"},
      {"/app/x/.;/secure", "<400 ambiguous>"},
      {"/app/x/%2e%2e%3b/secure", "<400 ambiguous>"},
      {"/app/secure./x", "<400 ambiguous>"},
      {"/app/secure.../x", "<400 ambiguous>"},
      {"/app/secure%20/x", "<400 ambiguous>"},
      {"/app/secure.;a/x", "<400 ambiguous>"},
      {"/app/%252e%252e/x", "<400 ambiguous>"},
      {"/app/%25%32%65/x", "<400 ambiguous>"},
  };
  for (const auto& c : cases) EXPECT_EQ(forwarded(c.in), c.out) << c.in;
}

TEST(ForwardTarget, KeepsALiteralPercentThatDecodesToNothing) {
  EXPECT_EQ(forwarded("/100%25"), "/100%25");
  EXPECT_EQ(forwarded("/%25zz"), "/%25zz");
}

TEST(HostKey, LowerCasesDropsPortAndOneTrailingDot) {
  const struct { const char* in; const char* out; } cases[] = {
      {"", ""},
      {"localhost", "localhost"},
      {"B.Test", "b.test"},
      {"b.test.", "b.test"},
      {"b.test.:443", "b.test"},
      {"b.test..", "b.test."},
      {"b.test:", "b.test"},
      {"127.0.0.1:8443", "127.0.0.1"},
      {"[::1]:443", "::1"},
      {"[FE80::1]", "fe80::1"},
  };
  for (const auto& c : cases) {
    auto k = host_key(c.in);
    ASSERT_TRUE(k) << c.in;
    EXPECT_EQ(*k, c.out) << c.in;
  }
  for (const char* bad : {"a b", "a,b", "a;b", "user@host", "host/x", "host:44x", "host:123456", "[::1",
                          "[]", "[::1]x", "a:1:2", "h\"x", "h\\x", "h%41"})
    EXPECT_FALSE(host_key(bad)) << bad;
}

TEST(SplitTarget, AcceptsOriginAndAbsoluteFormOnly) {
  auto o = split_target("/a?b");
  ASSERT_TRUE(o);
  EXPECT_FALSE(o->absolute);
  EXPECT_EQ(o->origin, "/a?b");
  auto a = split_target("HTTPS://B.test:443/x?y");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->absolute);
  EXPECT_EQ(a->authority, "B.test:443");
  EXPECT_EQ(a->origin, "/x?y");
  auto bare = split_target("http://b.test");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->origin, "/");
  for (const char* bad : {"*", "b.test:443", "ftp://b.test/x", "http:///x", "http://u@b.test/x", "http://b.test?x",
                          "http://b.test#x", ""})
    EXPECT_FALSE(split_target(bad)) << bad;
}

pki::X509Ptr load_cert(const std::string& name) {
  FILE* f = std::fopen(test::pki(name).c_str(), "r");
  X509* c = f ? PEM_read_X509(f, nullptr, nullptr, nullptr) : nullptr;
  if (f) std::fclose(f);
  return pki::X509Ptr(c);
}

struct Head {
  Request req;
  config::Forward cfg;
  config::BackendUrl backend = *config::parse_backend("http://127.0.0.1:8080");
  auth::Outcome who;
  pki::X509Ptr leaf = load_cert("alice.pem");

  std::string build() {
    ForwardInput in{req, "/x", "localhost", cfg, backend, false, "127.0.0.1", true, who, leaf.get()};
    return forwarded_head(in);
  }
};

TEST(ForwardedHead, CarriesACertificateOnlyWhenTheDecisionValidatedAndMappedIt) {
  for (const char* fmt : {"x-arr-clientcert", "rfc9440", "xfcc"}) {
    Head h;
    ASSERT_TRUE(h.leaf);
    h.cfg.client_cert = fmt;
    h.cfg.cert_fields = true;
    h.req.method = "GET";
    h.who.user = "";
    h.who.auth_method = "Anonymous";
    std::string head = h.build();
    for (const char* name : {"X-ARR-ClientCert", "Client-Cert", "X-Forwarded-Client-Cert", "X-Client-Cert-"})
      EXPECT_EQ(head.find(name), std::string::npos) << fmt << ": " << head;
    h.who.certificate = true;
    head = h.build();
    EXPECT_NE(head.find("X-Client-Cert-Subject"), std::string::npos) << fmt;
  }
}

TEST(ForwardedHead, UnderscoreNamesAreDroppedOrFoldedToTheIdentityNames) {
  Head h;
  h.req.method = "GET";
  h.req.headers = {{"X_Remote_User", "admin"}, {"x_arr_clientcert", "Zm9v"}, {"Content_Length", "5"},
                   {"My_Header", "1"}, {"X-Remote_Auth_Type", "Certificate"}, {"Host", "localhost"},
                   {"Transfer_Encoding", "chunked"}, {"Authorization", "Basic x"}};
  std::string head = h.build();
  EXPECT_EQ(head.find('_'), std::string::npos) << head;
  h.cfg.underscores_in_headers = true;
  head = h.build();
  EXPECT_NE(head.find("My_Header: 1\r\n"), std::string::npos) << head;
  for (const char* gone : {"X_Remote_User", "x_arr_clientcert", "Content_Length", "X-Remote_Auth_Type",
                           "Transfer_Encoding"})
    EXPECT_EQ(head.find(gone), std::string::npos) << gone << ": " << head;
  EXPECT_EQ(head.find("admin"), std::string::npos);
}

TEST(ForwardedHead, SendsTheGivenTargetAndOneHost) {
  Head h;
  h.req.method = "GET";
  h.req.target = "/x/..;/secure";
  h.req.headers = {{"Host", "localhost"}};
  std::string head = h.build();
  EXPECT_EQ(head.rfind("GET /x HTTP/1.1\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("\r\nHost: 127.0.0.1:8080\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nX-Forwarded-Host: localhost\r\n"), std::string::npos) << head;
}

}  // namespace
}  // namespace certgate::http

namespace certgate::config {
namespace {

TEST(ConfigIdent, UnderscoresInHeadersIsABooleanOffByDefault) {
  test::TempDir dir;
  const std::string site = "[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                           "certificate = \"server.pem\"\n[sites.forward]\n";
  EXPECT_FALSE(load(dir.write("a.toml", site)).sites[0].forward.underscores_in_headers);
  EXPECT_TRUE(load(dir.write("b.toml", site + "underscores_in_headers = true\n")).sites[0].forward.underscores_in_headers);
  try {
    load(dir.write("c.toml", site + "underscores_in_headers = \"yes\"\n"));
    FAIL() << "a string for a boolean loaded";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.toml:7:26: sites[0].forward.underscores_in_headers: expected true or false"),
              std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace certgate::config
