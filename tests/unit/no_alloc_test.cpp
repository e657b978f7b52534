// What the keep-alive path formats per request allocates nothing once its buffers have grown:
// the W3C line and the response head are written into strings the connection reuses. (The
// whole request is counted by bench/callgrind.sh: none of its allocations are certgate's.)
#include "config/config.hpp"
#include "http/message.hpp"
#include "log/w3c.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <new>

namespace {
thread_local std::size_t allocations = 0;  // this thread's: gtest's own threads do not count
}  // namespace

void* operator new(std::size_t n) {
  ++allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace certgate {
namespace {

TEST(NoAllocation, W3cLineIntoAGrownBuffer) {
  auto fields = config::default_log_fields();
  fields.push_back("x-request-id");  // certgate's own fields cost nothing more
  fields.push_back("x-reason");
  log::Format format(fields);
  log::Entry e;
  e.request_id = "9f3c2a7e-1-4711";
  e.unix_ms = 1764547200123;
  e.site_name = "Bench";
  e.s_ip = "127.0.0.1";
  e.c_ip = "127.0.0.1";
  e.s_port = 8443;
  e.method = "GET";
  e.uri_stem = "/index.html";
  e.username = "staff";
  e.user_agent = "certgate-load/1.0 (a user agent long enough to leave the small-string buffer)";
  e.host = "localhost";
  e.version = "HTTP/1.1";
  e.status = 200;
  e.time_taken_ms = 1;
  e.sc_bytes = 210;
  e.cs_bytes = 48;
  std::string line;
  format.append_line(line, e);  // grows the buffer; the first line of a second formats the stamp
  const std::string first = line;
  const std::size_t before = allocations;
  for (int i = 0; i < 100; ++i) {
    line.clear();
    e.unix_ms += 7;  // same second: the date and time are formatted once per second
    format.append_line(line, e);
  }
  EXPECT_EQ(allocations - before, 0u);
  EXPECT_EQ(line.substr(0, 20), first.substr(0, 20));  // "2025-12-01 00:00:00 "
}

TEST(NoAllocation, ResponseHeadIntoAGrownBuffer) {
  http::Response r;
  r.prepared = std::make_shared<http::PreparedAnswer>(http::PreparedAnswer{
      "Content-Type: text/html; charset=utf-8\r\nETag: \"692cd5d2000000000:6\"\r\n"
      "Last-Modified: Sun, 30 Nov 2025 23:59:14 GMT\r\nAccept-Ranges: bytes\r\n",
      "hello\n"});
  r.cache_control = "private, no-cache";  // an authenticated answer's
  std::string head;
  http::serialize_head(head, r, 10, true);
  const std::size_t before = allocations;
  for (int i = 0; i < 100; ++i) {
    head.clear();
    http::serialize_head(head, r, i % 2 ? 10 : 11, true);  // the Date is formatted in place
  }
  EXPECT_EQ(allocations - before, 0u);
  EXPECT_NE(head.find("Content-Length: 6\r\n"), std::string::npos);
  EXPECT_NE(head.find("ETag: \"692cd5d2000000000:6\"\r\n"), std::string::npos);
  EXPECT_EQ(r.header("etag"), "\"692cd5d2000000000:6\"");
  EXPECT_NE(head.find("Cache-Control: private, no-cache\r\n"), std::string::npos);
}

}  // namespace
}  // namespace certgate
