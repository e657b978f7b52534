// IIS value parsing: sslFlags as names or numbers; netsh blocks, IPv6 endpoints included.
#include "iis/import.hpp"

#include <gtest/gtest.h>

namespace certgate::iis {
namespace {

TEST(SslFlags, NamesAndNumbers) {
  using V = std::vector<std::string>;
  EXPECT_EQ(ssl_flag_words("Ssl, SslNegotiateCert, SslRequireCert"), (V{"Ssl", "SslNegotiateCert", "SslRequireCert"}));
  EXPECT_EQ(ssl_flag_words("104"), (V{"Ssl", "SslNegotiateCert", "SslRequireCert"}));
  EXPECT_EQ(ssl_flag_words("264"), (V{"Ssl", "Ssl128"}));
  EXPECT_EQ(ssl_flag_words("None"), V{});
  EXPECT_EQ(ssl_flag_words("0"), V{});
  EXPECT_EQ(ssl_flag_words("Ssl,SslMapCert"), V{"Ssl"});
}

TEST(Netsh, BlocksAndLabels) {
  auto b = parse_netsh(
      "    IP:port                 : [::]:443\n"
      "    Certificate Hash        : abc\n"
      "    Negotiate Client Certificate : Enabled\n"
      "    Usage Check             : Disabled\n"
      "\n"
      "    Hostname:port           : www.contoso.com:443\n"
      "    Verify Client Certificate Revocation : Disabled\n"
      "    URL Retrieval Timeout   : 15000\n"
      "    Ctl Store Name          : (null)\n");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].endpoint, "[::]:443");
  EXPECT_TRUE(b[0].negotiate_client_cert);
  EXPECT_FALSE(b[0].usage_check);
  EXPECT_FALSE(b[0].sni);
  EXPECT_TRUE(b[1].sni);
  EXPECT_FALSE(b[1].verify_revocation);
  EXPECT_EQ(b[1].url_timeout_ms, 15000);
  EXPECT_EQ(b[1].ctl_store, "");
  EXPECT_TRUE(parse_netsh("garbage\nno separators here\n").empty());
}

}  // namespace
}  // namespace certgate::iis
