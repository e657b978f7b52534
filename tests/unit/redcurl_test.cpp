// The hostile pass over the libcurl fetcher (docs/security.md "The fetcher on libcurl: a hostile
// pass"): what a certificate's URL may ask of the configured directory hosts (searched with the
// bind), and the proxy's credentials kept out of the route that `verify --urlfetch` and the fetch
// log show. Real sockets on loopback: a bound port that refuses every connection.
#include "config/config.hpp"
#include "fetch/fetcher.hpp"
#include "runtime/clock.hpp"
#include "loopback.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>

namespace certgate {
namespace {

fetch::Result fetch_with(const config::FetchSettings& settings, const std::string& url,
                         fetch::LdapValue want = fetch::LdapValue::Crl) {
  runtime::ManualClock clock;
  fetch::Fetcher fetcher(settings, clock);
  fetch::Request req;
  req.url = url;
  req.timeout_ms = 5000;
  req.ldap_value = want;
  std::optional<fetch::Result> got;
  fetcher.start(req, [&](fetch::Result r) { got = std::move(r); });
  for (int i = 0; i < 100 && !got; ++i) fetcher.run_once(100);
  return got.value_or(fetch::Result{});
}

TEST(RedcurlProxy, TheProxysCredentialsAreNeverShown) {
  test::Loopback proxy(false), origin(false);
  config::FetchSettings s;
  s.proxy = "http://alice:s3cret@127.0.0.1:" + proxy.port();
  const auto r = fetch_with(s, "http://127.0.0.1:" + origin.port() + "/a.crl");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.route, "via proxy http://127.0.0.1:" + proxy.port());
  // The connection that failed was the proxy's, not the server's.
  EXPECT_EQ(r.error.rfind("cannot connect to the proxy http://127.0.0.1:" + proxy.port() + ": ", 0), 0u) << r.error;
  EXPECT_EQ(r.error.find("s3cret"), std::string::npos) << r.error;
  EXPECT_EQ(r.route.find("alice"), std::string::npos) << r.route;
}

TEST(RedcurlDirectory, OnlyWhatAdCsWritesIsAskedOfTheDirectoryHosts) {
  test::Loopback dc(false);
  const std::string host = "ldap://127.0.0.1:" + dc.port();
  config::FetchSettings s;
  s.proxy = "";
  s.ldap_hosts = {host};
  s.ldap_bind_dn = "cn=reader,dc=corp";
  s.ldap_password = "secret";
  struct Row {
    std::string url;
    fetch::LdapValue want;
    const char* refused;  // the start of the error, or nullptr: tried on the directory
  };
  const Row rows[] = {
      // What AD CS writes: the CDP, a delta, the AIA.
      {"ldap:///CN=Issuing%20CA,CN=host,CN=CDP,CN=Public%20Key%20Services,DC=corp"
       "?certificateRevocationList?base?objectClass=cRLDistributionPoint", fetch::LdapValue::Crl, nullptr},
      {"ldap:///CN=Issuing%20CA,CN=CDP,DC=corp?deltaRevocationList;binary?base?(objectClass=cRLDistributionPoint)",
       fetch::LdapValue::Crl, nullptr},
      {"ldap:///CN=Issuing%20CA,CN=AIA,DC=corp?cACertificate?base?objectClass=certificationAuthority",
       fetch::LdapValue::Certificate, nullptr},
      {"ldap:///cn=x?certificateRevocationList%3Bbinary", fetch::LdapValue::Crl, nullptr},
      // A subtree search of every user's attributes, as the bind account.
      {"ldap:///DC=corp?userPassword,cACertificate?sub?(&(objectClass=user)(description=a*))",
       fetch::LdapValue::Certificate, "an ldap URL asking for attribute 'userPassword'"},
      {"ldap:///DC=corp?cACertificate?sub?(objectClass=*)", fetch::LdapValue::Certificate,
       "an ldap URL with scope 'sub'"},
      {"ldap:///DC=corp?cACertificate?one", fetch::LdapValue::Certificate, "an ldap URL with scope 'one'"},
      {"ldap:///cn=x?certificateRevocationList?base?(|(cn=a*)(objectClass=cRLDistributionPoint))",
       fetch::LdapValue::Crl, "an ldap URL with filter"},
      {"ldap:///cn=x", fetch::LdapValue::Crl, "an ldap URL naming no attribute"},
      {"ldap:///cn=x?cACertificate", fetch::LdapValue::Crl, "an ldap URL asking for attribute 'cACertificate'"},
      {"ldap:///cn=x?certificateRevocationList?base??!x-ext=1", fetch::LdapValue::Crl, "an ldap URL with extensions"},
      {"ldap:///cn=x?certificateRevocationList?base?objectClass=a??sub", fetch::LdapValue::Crl,
       "an ldap URL with extensions"},
      {"ldap:///cn=x#?certificateRevocationList?base", fetch::LdapValue::Crl, "an ldap URL with '#'"},
      // A directory host named in full gets the bind too: the same rules.
      {host + "/DC=corp?cn?sub", fetch::LdapValue::Crl, "an ldap URL asking for attribute 'cn'"},
      // No DN: libldap reads the attributes, scope and filter right after the host.
      {host + "?userPassword?sub?(objectClass=*)?/cn=x?certificateRevocationList?base", fetch::LdapValue::Crl,
       "an ldap URL without a DN after its host"},
  };
  for (const auto& row : rows) {
    const auto r = fetch_with(s, row.url, row.want);
    EXPECT_FALSE(r.ok) << row.url;
    if (row.refused) {
      EXPECT_EQ(r.error.rfind(row.refused, 0), 0u) << row.url << ": " << r.error;
      EXPECT_EQ(r.route, "none (not started)") << row.url;
    } else {
      EXPECT_NE(r.error.find("cannot connect to 127.0.0.1:" + dc.port()), std::string::npos) << row.url << ": " << r.error;
      EXPECT_EQ(r.route, "via ldap host " + host) << row.url;
    }
  }
  // Another directory a certificate names is asked anonymously, and whatever it likes.
  test::Loopback other(false);
  const auto r = fetch_with(s, "ldap://127.0.0.1:" + other.port() + "/DC=corp?cn?sub");
  EXPECT_NE(r.error.find("cannot connect to 127.0.0.1:" + other.port()), std::string::npos) << r.error;
}

}  // namespace
}  // namespace certgate
