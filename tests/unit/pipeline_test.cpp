// The evidence pipeline's per-request state (pipeline/evidence.hpp): a need stops the walk, the
// walk resumes where it stopped once the need is met, and what the connection keeps is reused
// while it holds — driven by a ManualClock, not by sleeping.
#include "config/config.hpp"
#include "pipeline/evidence.hpp"
#include "pki/load.hpp"
#include "runtime/snapshot.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace certgate::pipeline {
namespace {

using test::pki;

std::string site_toml(const test::TempDir& dir, const std::string& extra) {
  dir.write("users.txt", "azureuser:$6$salt$notarealhashbutwellformed\n");
  return "[server]\nlog_dir = \"" + (dir.path() / "logs").string() + "\"\n"
         "[[sites]]\nname = \"S\"\nid = 1\nroot = \"" + dir.path().string() + "\"\n"
         "ssl_flags = [\"Ssl\", \"SslNegotiateCert\", \"SslRequireCert\"]\n"
         "  [[sites.bindings]]\n  listen = \"127.0.0.1:1\"\n"
         "  certificate = \"" + pki("server-chain.pem").string() + "\"\n"
         "  key = \"" + pki("server.key").string() + "\"\n"
         "  [sites.client_certificates]\n  trusted_cas = [\"" + pki("root-ca.pem").string() + "\"]\n"
         "  crl_files = [\"" + pki("crl").string() + "\"]\n"
         "  [sites.mapping]\n  [[sites.mapping.one_to_one]]\n  user = \"azureuser\"\n"
         "  certificate = \"" + pki("alice.pem").string() + "\"\n"
         "  [sites.basic]\n  enabled = true\n  users_file = \"" + (dir.path() / "users.txt").string() + "\"\n"
         "  [[sites.locations]]\n  path = \"/admin\"\n  require_password = true\n" + extra;
}

std::shared_ptr<const runtime::Snapshot> compile(const test::TempDir& dir, const std::string& extra = "") {
  return runtime::compile(config::load(dir.write("c.toml", site_toml(dir, extra))), 1);
}

tls::TlsFacts presented(const std::string& chain_file) {
  return tls::TlsFacts::from_certificates(pki::load_certificates(pki(chain_file)), true);
}

Inputs inputs(const runtime::SiteRuntime& site, const std::string& path, tls::TlsFacts& t,
              const runtime::Clock& clock, std::string_view authorization = {}) {
  Inputs in;
  in.site = &site;
  in.policy = &site.policy_for(path);
  in.tls = &t;
  in.clock = &clock;
  in.authorization = authorization;
  return in;
}

constexpr std::string_view kAzurePw = "Basic YXp1cmV1c2VyOnB3";  // azureuser:pw

TEST(Pipeline, DecidesAtOnceWhenNothingIsMissing) {
  test::TempDir dir;
  auto snap = compile(dir);
  auto t = presented("alice-chain.pem");
  RequestState st(inputs(snap->sites[0], "/", t, runtime::system_clock()));
  EXPECT_EQ(st.advance(), Need::None);
  ASSERT_TRUE(st.decided());
  EXPECT_TRUE(st.outcome().allowed());
  EXPECT_EQ(st.outcome().user, "azureuser");
}

TEST(Pipeline, PasswordNeedResumesWithoutValidatingAgain) {
  test::TempDir dir;
  auto snap = compile(dir);
  for (bool right : {true, false}) {
    auto t = presented("alice-chain.pem");
    RequestState st(inputs(snap->sites[0], "/admin/", t, runtime::system_clock(), kAzurePw));
    ASSERT_EQ(st.advance(), Need::Password);
    EXPECT_FALSE(st.decided());
    ASSERT_NE(st.evidence().chain, nullptr);
    EXPECT_EQ(st.evidence().chain->fault, auth::ChainFault::None);
    PasswordCheck job = st.take_password();
    EXPECT_EQ(job.password, "pw");
    EXPECT_EQ(job.hash, "$6$salt$notarealhashbutwellformed");
    // Were the chain stage run again, it would find this epoch stale and validate anew.
    t.report_epoch = 12345;
    st.password_checked(right);
    EXPECT_EQ(st.advance(), Need::None);
    EXPECT_EQ(t.report_epoch, 12345u);
    EXPECT_EQ(st.outcome().allowed(), right);
    EXPECT_EQ(st.outcome().user, right ? "azureuser" : "");
    if (!right) EXPECT_EQ(st.outcome().row().status, 401);
  }
}

// A user the users file does not hold is checked too (for the time it takes, against another
// user's hash) and never passes, even if that hash took the password: the answer's delay must not
// list the users.
TEST(Pipeline, UnknownUserCostsACheckAndNeverPasses) {
  test::TempDir dir;
  auto snap = compile(dir, "  [[sites.locations]]\n  path = \"/basic\"\n  ssl_flags = [\"Ssl\"]\n"
                           "  anonymous = false\n");
  for (std::string_view who : {kAzurePw, std::string_view("Basic bm9ib2R5OnB3")}) {  // azureuser:pw, nobody:pw
    auto t = presented("alice-chain.pem");
    RequestState st(inputs(snap->sites[0], "/basic/", t, runtime::system_clock(), who));
    ASSERT_EQ(st.advance(), Need::Password);
    PasswordCheck job = st.take_password();
    EXPECT_EQ(job.hash, "$6$salt$notarealhashbutwellformed");
    st.password_checked(true);
    EXPECT_EQ(st.advance(), Need::None);
    const bool known = who == kAzurePw;
    EXPECT_EQ(st.outcome().allowed(), known);
    EXPECT_EQ(st.password_asked(), known);
    if (!known) EXPECT_EQ(st.outcome().row().substatus, 1);
  }
}

TEST(Pipeline, AdvancingBeforeTheNeedIsMetIsAnError) {
  test::TempDir dir;
  auto snap = compile(dir);
  auto t = presented("alice-chain.pem");
  RequestState st(inputs(snap->sites[0], "/admin/", t, runtime::system_clock(), kAzurePw));
  ASSERT_EQ(st.advance(), Need::Password);
  EXPECT_THROW(st.advance(), std::logic_error);
}

// Directory mapping: the answer met for one request is kept on the connection until it expires by
// the clock, then asked for again.
TEST(Pipeline, DirectoryAnswerIsReusedUntilItExpires) {
  test::TempDir dir;
  auto snap = compile(dir,
                      "  [sites.directory_mapping]\n  url = [\"ldap://127.0.0.1:1\"]\n"
                      "  base_dn = \"dc=corp,dc=test\"\n  domain = \"CORP\"\n");
  const runtime::SiteRuntime& site = snap->sites[0];
  // Validation happens at this clock's time too: start it at the present (the test PKI's
  // certificates are valid from their creation).
  runtime::ManualClock clock(std::time(nullptr));
  auto t = presented("bob-chain.pem");  // no one-to-one entry: the directory is asked
  auto run = [&]() { return inputs(site, "/", t, clock); };
  RequestState first(run());
  ASSERT_EQ(first.advance(), Need::Directory);
  auth::Outcome bob;
  bob.user = "CORP\\bob";
  bob.auth_method = "Certificate";
  first.directory_answered(directory::Mapped{std::make_shared<const auth::Outcome>(bob), clock.steady_ms() + 60'000});
  ASSERT_EQ(first.advance(), Need::None);
  EXPECT_EQ(first.outcome().user, "CORP\\bob");

  clock.advance(std::chrono::seconds(59));
  RequestState second(run());
  EXPECT_EQ(second.advance(), Need::None);  // kept on the connection
  EXPECT_EQ(second.outcome().user, "CORP\\bob");

  clock.advance(std::chrono::seconds(2));
  RequestState third(run());
  EXPECT_EQ(third.advance(), Need::Directory);  // expired: asked again
}

}  // namespace
}  // namespace certgate::pipeline
