// The request-target normaliser on raw targets: whatever it accepts is an absolute path with
// no empty, "." or ".." segments and no control bytes, since the location policy and the file
// served are both chosen by that path.
#include "fuzz_util.hpp"
#include "http/path.hpp"

using namespace certgate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto t = http::normalize_target(fuzz::bytes(data, size));
  if (!t) return 0;
  const std::string& p = t->path;
  FUZZ_CHECK(!p.empty() && p.front() == '/');
  FUZZ_CHECK(p == "/" || p.back() != '/');
  FUZZ_CHECK(p.find("//") == std::string::npos);
  FUZZ_CHECK(p.find('\\') == std::string::npos);
  FUZZ_CHECK(p.find("/./") == std::string::npos && p.find("/../") == std::string::npos);
  FUZZ_CHECK(p != "/." && p != "/..");
  FUZZ_CHECK(p.size() < 3 || p.compare(p.size() - 3, 3, "/..") != 0);
  FUZZ_CHECK(p.size() < 2 || p.compare(p.size() - 2, 2, "/.") != 0);
  for (unsigned char c : p) FUZZ_CHECK(c >= 0x20 && c != 0x7f);
  FUZZ_CHECK(t->query.find('#') == std::string::npos);
  // A path with nothing left to decode normalises to itself.
  if (p.find_first_of("%?#") == std::string::npos) {
    auto again = http::normalize_target(p);
    FUZZ_CHECK(again && again->path == p);
  }
  return 0;
}
