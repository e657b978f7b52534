// Resource limits: request body framing (RFC 9112 §6, refused rather than guessed at) and the
// [server] keys that bound what one client can make certgate hold.
#include "config/config.hpp"
#include "http/message.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace certgate {
namespace {

struct FramingCase {
  const char* name;
  int version;
  std::vector<std::string> te;  // Transfer-Encoding fields, in order
  std::vector<std::string> cl;  // Content-Length fields, in order
  int status;                   // 0 = served
};

TEST(BodyFraming, StrictTable) {
  const FramingCase cases[] = {
      {"no body", 11, {}, {}, 0},
      {"one length", 11, {}, {"5"}, 0},
      {"length on 1.0", 10, {}, {"5"}, 0},
      {"chunked", 11, {"chunked"}, {}, 0},
      {"chunked any case", 11, {"Chunked"}, {}, 0},
      {"chunked with spaces", 11, {" chunked\t"}, {}, 0},
      {"two equal lengths", 11, {}, {"5", "5"}, 400},
      {"length list", 11, {}, {"5, 5"}, 400},
      {"not ending in chunked", 11, {"gzip"}, {}, 400},
      {"chunked then gzip", 11, {"chunked, gzip"}, {}, 400},
      {"chunked twice", 11, {"chunked, chunked"}, {}, 400},
      {"empty coding", 11, {""}, {}, 400},
      {"only commas", 11, {" , ,"}, {}, 400},
      {"chunked with a parameter", 11, {"chunked;q=1"}, {}, 400},
      {"gzip then chunked", 11, {"gzip, chunked"}, {}, 501},
      {"gzip then chunked, empty elements", 11, {"gzip,, chunked ,"}, {}, 501},
      {"two fields", 11, {"gzip", "chunked"}, {}, 400},
      {"two chunked fields", 11, {"chunked", "chunked"}, {}, 400},
      {"chunked and length", 11, {"chunked"}, {"5"}, 400},
      {"gzip and length", 11, {"gzip"}, {"5"}, 400},
      {"chunked on 1.0", 10, {"chunked"}, {}, 400},
  };
  for (const auto& c : cases) {
    http::BodyFraming f;
    for (const auto& v : c.te) f.transfer_encoding(v);
    for (const auto& v : c.cl) f.content_length(v);
    auto r = f.refusal(c.version);
    EXPECT_EQ(r.answer ? auth::info(*r.answer).status : 0, c.status) << c.name;
    if (c.status != 0) EXPECT_FALSE(r.reason.empty()) << c.name;
  }
}

std::string server_error(const std::string& server_keys) {
  return test::config_error("[server]\n" + server_keys +
                            "\n[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = "
                            "\"127.0.0.1:8443\"\ncertificate = \"server.pem\"\n");
}

TEST(ResourceConfig, Defaults) {
  config::ServerSettings s;
  EXPECT_EQ(s.max_client_cert_list_bytes, 32u * 1024);
  EXPECT_EQ(s.session_cache_bytes, 128u << 20);
  EXPECT_EQ(server_error("max_client_cert_list_bytes = 65536\nsession_cache_bytes = 2097152"), "");
}

TEST(ResourceConfig, BadValuesNameTheKeyAndPosition) {
  std::string e = server_error("max_client_cert_list_bytes = 100");
  EXPECT_NE(e.find("c.toml:2:30: server.max_client_cert_list_bytes: must be between 4096 and"),
            std::string::npos)
      << e;
  e = server_error("session_cache_bytes = 1000");
  EXPECT_NE(e.find("c.toml:2:23: server.session_cache_bytes: must be between 1048576 and"),
            std::string::npos)
      << e;
  e = server_error("max_client_cert_list_bytes = \"big\"");
  EXPECT_NE(e.find("server.max_client_cert_list_bytes: expected an integer"), std::string::npos) << e;
}

}  // namespace
}  // namespace certgate
