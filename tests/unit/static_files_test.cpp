// Static files: default documents, redirects, conditional requests, ranges, and no escape
// from the root (symlinks included).
#include "http/static_files.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

namespace certgate::http {
namespace {

using test::TempDir;

struct Fixture : ::testing::Test {
  TempDir dir;
  std::filesystem::path root;
  std::vector<std::string> default_documents{"index.html"};
  void SetUp() override {
    root = dir.path() / "www";
    dir.write("www/index.html", "<h1>home</h1>");
    dir.write("www/docs/readme.txt", "0123456789");
    dir.write("www/empty/.keep", "");
    dir.write("secret.txt", "top secret");
    std::filesystem::create_symlink(dir.path() / "secret.txt", root / "escape.txt");
  }
  StaticRequest req(std::string path, bool slash = false) {
    StaticRequest r;
    r.root = &root;
    r.default_documents = &default_documents;
    r.path = std::move(path);
    r.trailing_slash = slash;
    return r;
  }
};

TEST_F(Fixture, ServesDefaultDocument) {
  Response r = serve_static(req("/"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<h1>home</h1>");
}

TEST_F(Fixture, ServesFileWithTypeAndEtag) {
  Response r = serve_static(req("/docs/readme.txt"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "0123456789");
  bool typed = false, tagged = false;
  for (auto& h : r.headers) {
    typed |= h.name == "Content-Type" && h.value.rfind("text/plain", 0) == 0;
    tagged |= h.name == "ETag" && !h.value.empty();
  }
  EXPECT_TRUE(typed && tagged);
}

TEST_F(Fixture, FolderWithoutSlashRedirects) {
  Response r = serve_static(req("/docs"));
  EXPECT_EQ(r.status, 301);
}

TEST_F(Fixture, FolderWithoutDefaultDocumentIs403_14) {
  Response r = serve_static(req("/empty", true));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.substatus, 14);
}

TEST_F(Fixture, MissingFileIs404) { EXPECT_EQ(serve_static(req("/nope.txt")).status, 404); }

TEST_F(Fixture, SymlinkOutOfRootIs404) {
  EXPECT_EQ(serve_static(req("/escape.txt")).status, 404);
}

TEST_F(Fixture, IfNoneMatchGives304) {
  Response first = serve_static(req("/docs/readme.txt"));
  std::string etag;
  for (auto& h : first.headers)
    if (h.name == "ETag") etag = h.value;
  auto r2 = req("/docs/readme.txt");
  r2.if_none_match = etag;
  EXPECT_EQ(serve_static(r2).status, 304);
  r2.if_none_match = "\"other\"";
  EXPECT_EQ(serve_static(r2).status, 200);
}

TEST_F(Fixture, RangeGives206AndUnsatisfiable416) {
  auto r = req("/docs/readme.txt");
  r.range = "bytes=2-4";
  Response part = serve_static(r);
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, "234");
  r.range = "bytes=50-";
  EXPECT_EQ(serve_static(r).status, 416);
}

TEST(Range, Parses) {
  bool unsat = false;
  auto r = parse_range("bytes=0-0", 10, unsat);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->length, 1u);
  r = parse_range("bytes=-3", 10, unsat);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 7u);
  r = parse_range("bytes=5-100", 10, unsat);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->length, 5u);
  EXPECT_FALSE(parse_range("bytes=1-2,4-5", 10, unsat));  // multi-range: whole file
  EXPECT_FALSE(unsat);
  EXPECT_FALSE(parse_range("items=1-2", 10, unsat));
  EXPECT_FALSE(parse_range("bytes=5-2", 10, unsat));
  EXPECT_FALSE(parse_range("bytes=abc", 10, unsat));
  EXPECT_FALSE(parse_range("bytes=10-", 10, unsat));
  EXPECT_TRUE(unsat);
}

}  // namespace
}  // namespace certgate::http
