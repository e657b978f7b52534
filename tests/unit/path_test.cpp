// Path normalization: traversal must be impossible, encodings must not dodge locations.
#include "http/path.hpp"

#include <gtest/gtest.h>

namespace certgate::http {
namespace {

std::string norm(std::string_view t) {
  auto n = normalize_target(t);
  return n ? n->path : "<rejected>";
}

TEST(Path, Normalizes) {
  EXPECT_EQ(norm("/"), "/");
  EXPECT_EQ(norm("/a/b"), "/a/b");
  EXPECT_EQ(norm("/a//b/./c"), "/a/b/c");
  EXPECT_EQ(norm("/a/b/../c"), "/a/c");
  EXPECT_EQ(norm("/%61dmin/x"), "/admin/x");
  EXPECT_EQ(norm("/a%20b"), "/a b");
  EXPECT_EQ(norm("/a\\b"), "/a/b");
}

TEST(Path, RejectsTraversalAndBadBytes) {
  EXPECT_EQ(norm("/../etc/passwd"), "<rejected>");
  EXPECT_EQ(norm("/a/../../etc/passwd"), "<rejected>");
  EXPECT_EQ(norm("/%2e%2e/etc/passwd"), "<rejected>");
  EXPECT_EQ(norm("/..%2fetc/passwd"), "<rejected>");
  EXPECT_EQ(norm("/..%5cetc"), "<rejected>");
  EXPECT_EQ(norm("/a%00b"), "<rejected>");
  EXPECT_EQ(norm("/a%0d%0ab"), "<rejected>");
  EXPECT_EQ(norm("/a%zz"), "<rejected>");
  EXPECT_EQ(norm("/a%4"), "<rejected>");
  EXPECT_EQ(norm("a/b"), "<rejected>");
  EXPECT_EQ(norm("http://x/a"), "<rejected>");
  EXPECT_EQ(norm(""), "<rejected>");
}

TEST(Path, SplitsQueryAndTrailingSlash) {
  auto n = normalize_target("/dir/?x=1&y=%20");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->path, "/dir");
  EXPECT_EQ(n->query, "x=1&y=%20");
  EXPECT_TRUE(n->trailing_slash);
}

}  // namespace
}  // namespace certgate::http
