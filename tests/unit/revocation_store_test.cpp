// The revocation store and its libcurl fetcher, driven by a ManualClock: CRL freshness and retry
// pacing judged by the clock the store is given (never the system's); the [server.fetch] keys;
// the no_proxy rules that decide the route; libcurl's LDAP output read back into the value.
// Real sockets on loopback: a one-shot HTTP server thread, and a bound port that refuses.
#include "config/config.hpp"
#include "fetch/fetcher.hpp"
#include "pki/load.hpp"
#include "pki/x509_text.hpp"
#include "revocation/online.hpp"
#include "revocation/store.hpp"
#include "loopback.hpp"
#include "test_util.hpp"

#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <thread>

namespace certgate {
namespace {

using test::Loopback;
using test::pki;

std::shared_ptr<X509> shared(pki::X509Ptr c) { return std::shared_ptr<X509>(c.release(), X509_free); }

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::int64_t next_update_of_issuing_crl() {
  auto crls = pki::load_crls(pki("crl/issuing-ca.crl"));
  return pki::to_unix(X509_CRL_get0_nextUpdate(crls.at(0).get()));
}

revocation::Need crl_need(const std::string& url) {
  revocation::Need n;
  n.kind = revocation::Kind::Crl;
  n.url = url;
  n.issuer = shared(std::move(pki::load_certificates(pki("issuing-ca.pem")).at(0)));
  n.timeout_ms = 2000;
  return n;
}

revocation::StoreSettings memory_only() {
  revocation::StoreSettings s;
  s.cache_dir.clear();
  return s;
}

TEST(RevocationClock, CrlFreshnessIsJudgedByTheStoresClock) {
  const std::int64_t next_update = next_update_of_issuing_crl();
  const std::string body = read_file(pki("crl/issuing-ca.crl"));
  {
    runtime::ManualClock before(next_update - 86400);
    revocation::Store store(memory_only(), before);
    Loopback web(true);
    web.serve_once(body);
    auto n = crl_need(web.url("/issuing.crl"));
    store.fetch_and_wait({n});
    auto st = store.state(n.key());
    ASSERT_TRUE(st);
    EXPECT_EQ(st->last_error, "");
    EXPECT_EQ(st->last_success, next_update - 86400);
    EXPECT_EQ(st->last_useless, 0);  // it brought something fresh: not paced
    ASSERT_TRUE(store.crl(n.url));
    EXPECT_EQ(store.crl(n.url)->fetched_at, next_update - 86400);
  }
  {
    runtime::ManualClock after(next_update + 86400);
    revocation::Store store(memory_only(), after);
    Loopback web(true);
    web.serve_once(body);
    auto n = crl_need(web.url("/issuing.crl"));
    store.fetch_and_wait({n});
    auto st = store.state(n.key());
    ASSERT_TRUE(st);
    EXPECT_NE(st->last_error.find("has passed"), std::string::npos) << st->last_error;
    EXPECT_EQ(st->last_useless, next_update + 86400);  // a stale CRL paces the next attempt
  }
}

TEST(RevocationClock, RetryPacingFollowsTheClock) {
  runtime::ManualClock clock;
  revocation::Store store(memory_only(), clock);
  Loopback refused(false);
  auto n = crl_need(refused.url("/issuing.crl"));
  store.fetch_and_wait({n});
  auto st = store.state(n.key());
  ASSERT_TRUE(st);
  EXPECT_NE(st->last_error.find("cannot connect to 127.0.0.1:"), std::string::npos) << st->last_error;
  EXPECT_EQ(st->last_attempt, clock.unix_seconds());
  EXPECT_FALSE(store.may_fetch(n.key(), clock.unix_seconds(), 30));
  clock.advance(std::chrono::seconds(29));
  EXPECT_FALSE(store.may_fetch(n.key(), clock.unix_seconds(), 30));
  clock.advance(std::chrono::seconds(1));
  EXPECT_TRUE(store.may_fetch(n.key(), clock.unix_seconds(), 30));
}

// A root and a leaf naming `cdp` as its CRL distribution point, both valid around `now`, and
// CRLs from the root with chosen dates: what revocation::validate() fetches and judges.
struct OnlinePki {
  pki::EvpPkeyPtr root_key{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")};
  pki::EvpPkeyPtr leaf_key{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")};
  pki::X509Ptr root{X509_new()};
  pki::X509Ptr leaf{X509_new()};

  OnlinePki(std::int64_t now, const std::string& cdp) {
    make(root.get(), "Clock Root", root_key.get(), 1, now, "critical,CA:TRUE", "");
    make(leaf.get(), "Clock Leaf", leaf_key.get(), 2, now, "CA:FALSE", "URI:" + cdp);
  }
  // DER of a CRL with these dates, listing the leaf when `revoked`.
  std::string crl(std::int64_t this_update, std::int64_t next_update, bool revoked) const {
    pki::X509CrlPtr owned(X509_CRL_new());
    X509_CRL* c = owned.get();
    X509_CRL_set_version(c, 1);
    X509_CRL_set_issuer_name(c, X509_get_subject_name(root.get()));
    std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> t(ASN1_TIME_set(nullptr, this_update), ASN1_TIME_free);
    std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> n(ASN1_TIME_set(nullptr, next_update), ASN1_TIME_free);
    X509_CRL_set1_lastUpdate(c, t.get());
    X509_CRL_set1_nextUpdate(c, n.get());
    if (revoked) {
      X509_REVOKED* r = X509_REVOKED_new();
      X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(leaf.get()));
      X509_REVOKED_set_revocationDate(r, t.get());
      X509_CRL_add0_revoked(c, r);
    }
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, root.get(), nullptr, nullptr, c, 0);
    X509_EXTENSION* aki = X509V3_EXT_conf_nid(nullptr, &v3, NID_authority_key_identifier, "keyid:always");
    X509_CRL_add_ext(c, aki, -1);
    X509_EXTENSION_free(aki);
    X509_CRL_sort(c);
    X509_CRL_sign(c, root_key.get(), EVP_sha256());
    unsigned char* der = nullptr;
    const int len = i2d_X509_CRL(c, &der);
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    return out;
  }
  pki::TrustStore trust(std::int64_t freshness_seconds) const {
    pki::TrustOptions o;
    o.revocation = pki::RevocationMode::Online;
    o.freshness_seconds = freshness_seconds;
    X509_up_ref(root.get());
    std::vector<pki::X509Ptr> anchors;
    anchors.emplace_back(root.get());
    return pki::TrustStore(std::move(anchors), {}, {}, o);
  }

 private:
  // Issued (and signed) by the root; the root by itself.
  void make(X509* c, const char* cn, EVP_PKEY* key, long serial, std::int64_t now, const char* basic,
            const std::string& cdp) {
    X509* issuer = root.get();
    X509_set_version(c, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
    ASN1_TIME_set(X509_getm_notBefore(c), now - 86400);
    ASN1_TIME_set(X509_getm_notAfter(c), now + 30 * 86400);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(c, X509_get_subject_name(issuer));
    X509_set_pubkey(c, key);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, c, nullptr, nullptr, 0);
    auto add = [&](int nid, const std::string& value) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
      ASSERT_NE(ext, nullptr) << value;
      X509_add_ext(c, ext, -1);
      X509_EXTENSION_free(ext);
    };
    add(NID_basic_constraints, basic);
    add(NID_key_usage, cdp.empty() ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    add(NID_subject_key_identifier, "hash");
    add(NID_authority_key_identifier, "keyid");
    if (!cdp.empty()) add(NID_crl_distribution_points, cdp);
    X509_sign(c, root_key.get(), EVP_sha256());
  }
};

// Validates as a request does: validate, fetch what is missing (`web` answers with `crl`),
// validate again.
revocation::Validation validate_fetching(const pki::TrustStore& trust, revocation::Store& store, X509* leaf,
                                         Loopback& web, const std::string& crl, std::size_t* fetches) {
  auto v = revocation::validate(trust, &store, leaf, nullptr, true);
  for (int round = 0; !v.needs.empty() && round < revocation::kMaxFetchRounds; ++round) {
    *fetches += v.needs.size();
    web.serve_once(crl);
    store.fetch_and_wait(v.needs);
    v = revocation::validate(trust, &store, leaf, nullptr, true);
  }
  return v;
}

// The e2e tests move the server's clock past a CRL's nextUpdate; this is that path alone: a
// cached CRL answers until its nextUpdate on the store's clock, then it is fetched again and the
// new one's revocation is seen.
TEST(RevocationClock, ValidationRefetchesACrlAfterItsNextUpdate) {
  runtime::ManualClock clock;
  const std::int64_t t0 = clock.unix_seconds();
  Loopback web(true);
  OnlinePki p(t0, web.url("/root.crl"));
  revocation::Store store(memory_only(), clock);
  const pki::TrustStore trust = p.trust(0);
  std::size_t fetches = 0;

  auto v = validate_fetching(trust, store, p.leaf.get(), web, p.crl(t0 - 60, t0 + 100, false), &fetches);
  EXPECT_EQ(v.report.fault, auth::ChainFault::None) << v.report.reason;
  EXPECT_EQ(v.valid_until, t0 + 100);
  EXPECT_EQ(fetches, 1u);

  // The CA revokes the leaf; the cached CRL still answers until its nextUpdate.
  const std::string revoking = p.crl(t0 + 99, t0 + 1000, true);
  clock.advance(std::chrono::seconds(99));
  v = revocation::validate(trust, &store, p.leaf.get(), nullptr, true);
  EXPECT_TRUE(v.needs.empty());
  EXPECT_EQ(v.report.fault, auth::ChainFault::None) << v.report.reason;

  clock.advance(std::chrono::seconds(2));  // past nextUpdate
  v = validate_fetching(trust, store, p.leaf.get(), web, revoking, &fetches);
  EXPECT_EQ(fetches, 2u);
  EXPECT_EQ(v.report.fault, auth::ChainFault::Revoked) << v.report.reason;
}

// freshness_seconds: a CRL fetched longer ago than that is fetched again, its nextUpdate notwithstanding.
TEST(RevocationClock, FreshnessSecondsRefetchesBeforeTheNextUpdate) {
  runtime::ManualClock clock;
  const std::int64_t t0 = clock.unix_seconds();
  Loopback web(true);
  OnlinePki p(t0, web.url("/root.crl"));
  revocation::Store store(memory_only(), clock);
  const pki::TrustStore trust = p.trust(10);
  std::size_t fetches = 0;

  auto v = validate_fetching(trust, store, p.leaf.get(), web, p.crl(t0 - 60, t0 + 86400, false), &fetches);
  EXPECT_EQ(v.report.fault, auth::ChainFault::None) << v.report.reason;
  EXPECT_EQ(v.valid_until, t0 + 10);
  EXPECT_EQ(fetches, 1u);

  const std::string revoking = p.crl(t0 + 5, t0 + 86400, true);
  clock.advance(std::chrono::seconds(9));
  v = revocation::validate(trust, &store, p.leaf.get(), nullptr, true);
  EXPECT_TRUE(v.needs.empty());
  EXPECT_EQ(v.report.fault, auth::ChainFault::None) << v.report.reason;

  clock.advance(std::chrono::seconds(1));  // fetched 10 s ago: too old
  v = validate_fetching(trust, store, p.leaf.get(), web, revoking, &fetches);
  EXPECT_EQ(fetches, 2u);
  EXPECT_EQ(v.report.fault, auth::ChainFault::Revoked) << v.report.reason;
}

// One fetch with the Fetcher alone, driven as the store's thread drives it.
fetch::Result fetch_one(const std::string& url, std::size_t max_bytes) {
  runtime::ManualClock clock;
  fetch::Fetcher fetcher(config::FetchSettings{.proxy = std::string()}, clock);
  fetch::Request req;
  req.url = url;
  req.max_bytes = max_bytes;
  req.timeout_ms = 5000;
  std::optional<fetch::Result> got;
  fetcher.start(req, [&](fetch::Result r) { got = std::move(r); });
  for (int i = 0; i < 100 && !got; ++i) fetcher.run_once(100);
  return got.value_or(fetch::Result{});
}

TEST(FetchLimits, TheSizeCapHoldsWithAndWithoutContentLength) {
  {
    Loopback web(true);
    web.serve_once(std::string(5000, 'x'));  // Content-Length: 5000 (CURLOPT_MAXFILESIZE_LARGE)
    const auto r = fetch_one(web.url("/a.crl"), 1024);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "answer larger than 1024 bytes");
  }
  {
    Loopback web(true);  // no Content-Length: the body ends when the connection does
    web.serve_raw("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + std::string(5000, 'x'));
    const auto r = fetch_one(web.url("/a.crl"), 1024);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "answer larger than 1024 bytes");
  }
  {
    Loopback web(true);
    web.serve_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" + std::string(4096, 'x') +
                  "\r\n0\r\n\r\n");
    const auto r = fetch_one(web.url("/a.crl"), 1024);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "answer larger than 1024 bytes");
  }
  {
    Loopback web(true);
    web.serve_once(std::string(1000, 'x'));
    const auto r = fetch_one(web.url("/a.crl"), 1024);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.body.size(), 1000u);
    EXPECT_EQ(r.route, "direct");
  }
}

TEST(FetchLimits, OnlyHttpHttpsAndLdapUrlsNamingOneHostStart) {
  const std::pair<const char*, const char*> rows[] = {
      {"file:///etc/passwd", "not a URL naming one host"},
      {"gopher://127.0.0.1:70/_x", "not an http, https, ldap or ldaps URL"},
      {"dict://127.0.0.1:6379/info", "not an http, https, ldap or ldaps URL"},
      {"http://user:pw@127.0.0.1/a.crl", "not a URL naming one host"},
      {"ldap://127.0.0.1%3a389%20ldap%3a%2f%2f127.0.0.2/cn=x", "not a URL naming one host"},
  };
  for (const auto& [url, error] : rows) {
    const auto r = fetch_one(url, 1024);
    EXPECT_FALSE(r.ok) << url;
    EXPECT_EQ(r.error.rfind(error, 0), 0u) << url << ": " << r.error;
    EXPECT_EQ(r.route, "none (not started)");
  }
  const auto r = fetch_one("ldap:///cn=x?certificateRevocationList", 1024);
  EXPECT_EQ(r.error, "a host-less ldap:/// URL needs [server.fetch] ldap_hosts");
}

TEST(FetchRoute, NoProxyFollowsCurlsRules) {
  const std::vector<std::string> list{".corp.example", "crl.test", "10.0.0.0/8", "::1", "192.168.1.7"};
  struct Row {
    const char* host;
    bool direct;
  } rows[] = {
      {"corp.example", true},  {"a.corp.example", true}, {"xcorp.example", false}, {"crl.test", true},
      {"CRL.TEST", true},      {"www.crl.test", true},   {"crl.testing", false},   {"10.1.2.3", true},
      {"11.1.2.3", false},     {"[::1]", true},          {"::2", false},           {"192.168.1.7", true},
      {"192.168.1.8", false},  {"example.com", false},
  };
  for (const auto& r : rows) EXPECT_EQ(fetch::no_proxy_matches(list, r.host), r.direct) << r.host;
  EXPECT_TRUE(fetch::no_proxy_matches({"*"}, "anything.example"));
  EXPECT_FALSE(fetch::no_proxy_matches({}, "anything.example"));
}

TEST(FetchLdap, LibcurlsLdifIsReadBackIntoTheValue) {
  // What Debian's libcurl 7.88 (OpenLDAP backend) writes for a base search, attributes apart.
  const std::string ldif =
      "DN: cn=issuing,ou=crl,dc=corp,dc=test\n\tobjectClass: cRLDistributionPoint\n\n\tcn: issuing\n\n"
      "\tcertificateRevocationList;binary:: MIIBAmFiYw==\n\n\n";
  std::string value, error;
  ASSERT_TRUE(fetch::ldap_value(ldif, fetch::LdapValue::Crl, 1024, value, error)) << error;
  EXPECT_EQ(value, std::string("\x30\x82\x01\x02" "abc", 7));
  EXPECT_FALSE(fetch::ldap_value(ldif, fetch::LdapValue::Certificate, 1024, value, error));
  EXPECT_EQ(error, "the entry has no cACertificate attribute");
  EXPECT_FALSE(fetch::ldap_value(ldif, fetch::LdapValue::Crl, 6, value, error));
  EXPECT_EQ(error, "answer larger than 6 bytes");
  EXPECT_FALSE(fetch::ldap_value("", fetch::LdapValue::Crl, 1024, value, error));
  EXPECT_EQ(error, "no such entry");
  EXPECT_FALSE(fetch::ldap_value("DN: cn=x\n\tcACertificate:: ***=\n", fetch::LdapValue::Certificate, 1024, value, error));
  EXPECT_NE(error.find("not valid base64"), std::string::npos) << error;
}

std::string fetch_error(const std::string& keys) {
  return test::config_error("[server.fetch]\n" + keys +
                            "\n[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\n"
                            "certificate = \"server.pem\"\n");
}

TEST(FetchConfig, KeysAreCheckedWithTheirPosition) {
  EXPECT_FALSE(config::FetchSettings{}.proxy.has_value());
  EXPECT_FALSE(config::FetchSettings{}.no_proxy.has_value());
  EXPECT_TRUE(config::FetchSettings{}.ldap_hosts.empty());
  EXPECT_EQ(fetch_error("proxy = \"http://proxy.example:3128\"\nno_proxy = [\".corp.example\"]"), "");
  EXPECT_EQ(fetch_error("proxy = \"\""), "");
  std::string e = fetch_error("proxy = \"socks5://proxy.example:1080\"");
  EXPECT_NE(e.find("c.toml:2:9: server.fetch.proxy: expected http://host:port"), std::string::npos) << e;
  // A refused proxy URL is quoted without the password it may carry.
  e = fetch_error("proxy = \"socks5://alice:s3cret@proxy.example:1080\"");
  EXPECT_NE(e.find("got \"socks5://…@proxy.example:1080\""), std::string::npos) << e;
  EXPECT_EQ(e.find("s3cret"), std::string::npos) << e;
  e = fetch_error("no_proxy = [\"a.example,b.example\"]");
  EXPECT_NE(e.find("server.fetch.no_proxy: expected host names"), std::string::npos) << e;
  e = fetch_error("ldap_hosts = [\"dc1.example:389\"]");
  EXPECT_NE(e.find("server.fetch.ldap_hosts: expected ldap://host[:port]"), std::string::npos) << e;
  e = fetch_error("ldap_hosts = [\"ldap://dc1.example/dc=x\"]");
  EXPECT_NE(e.find("server.fetch.ldap_hosts: expected ldap://host[:port]"), std::string::npos) << e;
  e = fetch_error("ldap_hosts = [\"ldap://dc1.example\"]\nldap_bind_dn = \"cn=reader\"");
  EXPECT_NE(e.find("server.fetch.ldap_bind_dn: a bind DN needs ldap_password_file"), std::string::npos) << e;
  e = fetch_error("ldap_password_file = \"/nonexistent/certgate-password\"");
  EXPECT_NE(e.find("server.fetch.ldap_password_file: cannot read /nonexistent/certgate-password"),
            std::string::npos) << e;
  e = fetch_error("proxies = \"http://p:3128\"");
  EXPECT_NE(e.find("server.fetch.proxies: unknown key"), std::string::npos) << e;
}

}  // namespace
}  // namespace certgate
