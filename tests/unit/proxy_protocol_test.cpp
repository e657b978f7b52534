// The PROXY protocol header parser (net/proxy_protocol.hpp), the trusted-peer ranges
// (net/cidr.hpp), and the shared ticket key files (tls/ticket_keys.hpp).
#include "net/cidr.hpp"
#include "net/proxy_protocol.hpp"
#include "test_util.hpp"
#include "tls/ticket_keys.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

namespace certgate {
namespace {

using net::ProxyHeader;
using Status = ProxyHeader::Status;

std::string v2(unsigned char ver_cmd, unsigned char fam, const std::string& block) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += static_cast<char>(ver_cmd);
  h += static_cast<char>(fam);
  h += static_cast<char>(block.size() >> 8);
  h += static_cast<char>(block.size() & 0xff);
  return h + block;
}

std::string inet4_block() {
  // 127.0.0.5:40000 → 127.0.0.1:443
  return std::string("\x7f\x00\x00\x05\x7f\x00\x00\x01\x9c\x40\x01\xbb", 12);
}

struct Row {
  const char* name;
  std::string bytes;
  Status status;
  std::string source;  // "" = none (the socket's peer stands)
  std::size_t length = 0;
};

TEST(ProxyProtocol, ParserTable) {
  std::string inet6(36, '\0');
  inet6[15] = 1;   // ::1
  inet6[31] = 1;
  inet6[32] = 0x30; inet6[33] = 0x39;  // 12345
  std::string mapped6 = inet6;  // ::ffff:192.0.2.9
  mapped6[10] = mapped6[11] = '\xff';
  mapped6[12] = '\xc0'; mapped6[13] = 0; mapped6[14] = 2; mapped6[15] = 9;
  const std::vector<Row> rows = {
      {"v1 tcp4", "PROXY TCP4 192.0.2.7 127.0.0.1 56324 443\r\n", Status::Complete, "192.0.2.7:56324", 42},
      {"v1 tcp6", "PROXY TCP6 2001:db8::7 ::1 56324 443\r\n", Status::Complete, "[2001:db8::7]:56324", 38},
      {"v1 unknown", "PROXY UNKNOWN\r\n", Status::Complete, "", 15},
      {"v1 unknown with addresses", "PROXY UNKNOWN ffff::1 ::1 1 2\r\n", Status::Complete, "", 31},
      {"v1 partial", "PROXY TCP4 192.0.2.7", Status::Incomplete, ""},
      {"v1 prefix only", "PRO", Status::Incomplete, ""},
      {"v1 bare LF", "PROXY TCP4 192.0.2.7 127.0.0.1 1 2\n", Status::Invalid, ""},
      {"v1 family mismatch", "PROXY TCP4 ::1 ::1 1 2\r\n", Status::Invalid, ""},
      {"v1 tcp6 with v4", "PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n", Status::Invalid, ""},
      {"v1 port too big", "PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", Status::Invalid, ""},
      {"v1 port sign", "PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n", Status::Invalid, ""},
      {"v1 double space", "PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n", Status::Invalid, ""},
      {"v1 missing field", "PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", Status::Invalid, ""},
      {"v1 extra field", "PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", Status::Invalid, ""},
      {"v1 udp", "PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n", Status::Invalid, ""},
      {"v1 scoped v6", "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", Status::Invalid, ""},
      {"v1 too long", "PROXY TCP6 " + std::string(120, 'a'), Status::Invalid, ""},
      {"v1 lower case", "proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", Status::Invalid, ""},
      {"tls first", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00", 12), Status::Invalid, ""},
      {"http first", "GET / HTTP/1.1\r\n", Status::Invalid, ""},
      {"v2 proxy inet", v2(0x21, 0x11, inet4_block()), Status::Complete, "127.0.0.5:40000", 28},
      {"v2 proxy inet6", v2(0x21, 0x21, inet6), Status::Complete, "[::1]:12345", 52},
      {"v2 local", v2(0x20, 0x00, ""), Status::Complete, "", 16},
      {"v2 local with addresses", v2(0x20, 0x11, inet4_block()), Status::Complete, "", 28},
      {"v2 unspec", v2(0x21, 0x00, ""), Status::Complete, "", 16},
      {"v2 tlvs skipped", v2(0x21, 0x11, inet4_block() + std::string("\x04\x00\x03" "abc", 6)),
       Status::Complete, "127.0.0.5:40000", 34},
      {"v2 unix", v2(0x21, 0x31, std::string(216, '\0')), Status::Complete, "", 232},
      {"v2 fixed part only", v2(0x21, 0x11, inet4_block()).substr(0, 14), Status::Incomplete, ""},
      {"v2 signature only", v2(0x21, 0x11, "").substr(0, 8), Status::Incomplete, ""},
      {"v2 block missing", v2(0x21, 0x11, inet4_block()).substr(0, 20), Status::Incomplete, ""},
      {"v2 version 1", v2(0x11, 0x11, inet4_block()), Status::Invalid, ""},
      {"v2 command 2", v2(0x22, 0x11, inet4_block()), Status::Invalid, ""},
      {"v2 family 4", v2(0x21, 0x41, inet4_block()), Status::Invalid, ""},
      {"v2 datagram", v2(0x21, 0x12, inet4_block()), Status::Invalid, ""},
      {"v2 short inet", v2(0x21, 0x11, inet4_block().substr(0, 8)), Status::Invalid, ""},
      {"v2 short inet6", v2(0x21, 0x21, inet6.substr(0, 20)), Status::Invalid, ""},
      {"v2 short unix", v2(0x21, 0x31, std::string(100, '\0')), Status::Invalid, ""},
      // HAProxy writes an IPv4 client as ::ffff:a.b.c.d when its two sides differ in family.
      {"v1 tcp6 mapped", "PROXY TCP6 ::ffff:192.0.2.7 ::1 56324 443\r\n", Status::Complete, "192.0.2.7:56324", 43},
      {"v2 inet6 mapped", v2(0x21, 0x21, mapped6), Status::Complete, "192.0.2.9:12345", 52},
      // The specification: "other values ... must be rejected as invalid by receivers".
      {"v2 inet without transport", v2(0x21, 0x10, inet4_block()), Status::Invalid, ""},
      {"v2 inet6 without transport", v2(0x21, 0x20, inet6), Status::Invalid, ""},
      {"v2 unspec stream", v2(0x21, 0x01, ""), Status::Invalid, ""},
      {"v2 unspec datagram", v2(0x21, 0x02, ""), Status::Invalid, ""},
      {"v2 unix datagram", v2(0x21, 0x32, std::string(216, '\0')), Status::Invalid, ""},
      {"v1 carrying the v2 signature", "PROXY \r\n\r\n", Status::Invalid, ""},
      {"v2 over the bound", v2(0x21, 0x11, std::string(net::kProxyV2MaxBytes, 'x')).substr(0, 16),
       Status::Invalid, ""},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name);
    const auto h = net::parse_proxy_header(r.bytes);
    EXPECT_EQ(h.status, r.status) << h.error;
    if (r.status == Status::Invalid) {
      EXPECT_FALSE(h.error.empty());
    }
    if (r.status != Status::Complete) continue;
    EXPECT_EQ(h.length, r.length);
    if (r.source.empty()) {
      EXPECT_FALSE(h.source.has_value());
    } else {
      ASSERT_TRUE(h.source.has_value());
      const auto& a = h.source->address();
      EXPECT_EQ((a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" +
                    std::to_string(h.source->port()),
                r.source);
    }
  }
}

TEST(ProxyProtocol, HeaderEndsWhereTheTlsStreamStarts) {
  const std::string header = "PROXY TCP4 192.0.2.7 127.0.0.1 56324 443\r\n";
  const auto h = net::parse_proxy_header(header + "\x16\x03\x01");
  ASSERT_EQ(h.status, Status::Complete);
  EXPECT_EQ(h.length, header.size());
  const std::string v2h = v2(0x21, 0x11, inet4_block());
  const auto h2 = net::parse_proxy_header(v2h + "\x16\x03\x01");
  ASSERT_EQ(h2.status, Status::Complete);
  EXPECT_EQ(h2.length, v2h.size());
}

TEST(ProxyProtocol, CidrMatching) {
  EXPECT_FALSE(net::Cidr::parse("10.0.0.0/33"));
  EXPECT_FALSE(net::Cidr::parse("10.0.0.0/"));
  EXPECT_FALSE(net::Cidr::parse("10.0.0/8"));
  EXPECT_FALSE(net::Cidr::parse("lb.example"));
  EXPECT_FALSE(net::Cidr::parse("::1/129"));
  const auto ten = *net::Cidr::parse("10.1.2.3/8");  // host bits are ignored
  namespace ip = boost::asio::ip;
  EXPECT_TRUE(ten.contains(ip::make_address("10.200.0.1")));
  EXPECT_FALSE(ten.contains(ip::make_address("11.0.0.1")));
  EXPECT_TRUE(ten.contains(ip::make_address("::ffff:10.0.0.9")));  // dual-stack listener
  EXPECT_FALSE(ten.contains(ip::make_address("::1")));
  const auto one = *net::Cidr::parse("127.0.0.1");
  EXPECT_TRUE(one.contains(ip::make_address("127.0.0.1")));
  EXPECT_FALSE(one.contains(ip::make_address("127.0.0.2")));
  // IPv4-mapped ranges are the IPv4 ranges they name (the peer is compared as IPv4).
  const auto mapped = *net::Cidr::parse("::ffff:10.0.0.0/104");
  EXPECT_TRUE(mapped.contains(ip::make_address("10.9.8.7")));
  EXPECT_TRUE(mapped.contains(ip::make_address("::ffff:10.9.8.7")));
  EXPECT_FALSE(mapped.contains(ip::make_address("11.0.0.1")));
  EXPECT_TRUE(net::Cidr::parse("::ffff:127.0.0.2")->contains(ip::make_address("127.0.0.2")));
  EXPECT_FALSE(net::Cidr::parse("::ffff:127.0.0.2")->contains(ip::make_address("127.0.0.1")));
  const auto v6 = *net::Cidr::parse("2001:db8::/32");
  EXPECT_TRUE(v6.contains(ip::make_address("2001:db8:1::1")));
  EXPECT_FALSE(v6.contains(ip::make_address("2001:db9::1")));
}

std::string load_error(const std::vector<std::filesystem::path>& files) {
  try {
    tls::load_ticket_key_files(files);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// 16 bytes of name `name`, then 64 bytes of key that are neither one repeated byte nor two
// equal halves (`salt` makes another).
std::string key_bytes(char name, int salt = 0) {
  std::string k(16, name);
  for (int i = 0; i < 64; ++i) k += static_cast<char>(i * 7 + salt);
  return k;
}

TEST(TicketKeyFiles, ChecksLengthPermissionsAndNames) {
  test::TempDir dir;
  const std::string key80 = key_bytes('k');
  auto good = dir.write("good.key", key80);
  ::chmod(good.c_str(), 0600);
  EXPECT_EQ(load_error({good}), "");
  auto group_read = dir.write("group.key", key_bytes('n'));
  ::chmod(group_read.c_str(), 0640);
  EXPECT_EQ(load_error({good, group_read}), "");

  auto short_key = dir.write("short.key", std::string(48, 'k'));
  ::chmod(short_key.c_str(), 0600);
  EXPECT_NE(load_error({short_key}).find("48 bytes; a ticket key file holds exactly 80"), std::string::npos);
  auto long_key = dir.write("long.key", std::string(81, 'k'));
  ::chmod(long_key.c_str(), 0600);
  EXPECT_NE(load_error({long_key}).find("81 bytes"), std::string::npos);

  auto world = dir.write("world.key", key80);
  ::chmod(world.c_str(), 0644);
  EXPECT_NE(load_error({world}).find("readable or writable by others"), std::string::npos);
  auto group_write = dir.write("gw.key", key80);
  ::chmod(group_write.c_str(), 0660);
  EXPECT_NE(load_error({group_write}).find("writable by its group"), std::string::npos);

  EXPECT_NE(load_error({dir.path() / "missing.key"}).find("missing.key"), std::string::npos);
  EXPECT_NE(load_error({dir.path()}).find("not a regular file"), std::string::npos);
  auto same_name = dir.write("same.key", key_bytes('k', 1));
  ::chmod(same_name.c_str(), 0600);
  EXPECT_NE(load_error({good, same_name}).find("also another file's"), std::string::npos);
}

TEST(TicketKeyFiles, RefusesKeysThatAreNotRandom) {
  // A placeholder key is a key anyone can forge tickets with (a session, client certificate
  // included, without its private key).
  test::TempDir dir;
  const std::string name(16, 'n');
  std::string halves = name;
  for (int i = 0; i < 64; ++i) halves += static_cast<char>(i % 32);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"zero.key", std::string(80, '\0')},
      {"hmac.key", name + std::string(32, 'h') + key_bytes('x').substr(48)},
      {"aes.key", key_bytes('x').substr(0, 48) + std::string(32, '\xff')},
      {"halves.key", halves},
  };
  for (const auto& [file, bytes] : bad) {
    SCOPED_TRACE(file);
    auto path = dir.write(file, bytes);
    ::chmod(path.c_str(), 0600);
    EXPECT_NE(load_error({path}).find(file + ": not random key material"), std::string::npos) << load_error({path});
  }
}

}  // namespace
}  // namespace certgate
