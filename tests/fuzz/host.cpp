// Authorities: the Host header value that picks a site (host_only), and the backend URL whose
// authority becomes the forwarded Host (parse_backend). The input is tried as both.
#include "config/backend.hpp"
#include "fuzz_util.hpp"
#include "http/path.hpp"

using namespace certgate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = fuzz::bytes(data, size);
  const std::string h = http::host_only(in);
  FUZZ_CHECK(h.size() <= in.size());
  for (unsigned char c : h) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
  if (!in.empty() && in.front() == '[' && in.find(']') != std::string_view::npos)
    FUZZ_CHECK(h.find(']') == std::string::npos);
  // Routing folds case: any spelling of one name picks the same site.
  std::string upper(in);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  FUZZ_CHECK(http::host_only(upper) == h);

  for (std::string_view scheme : {"", "http://", "https://"}) {
    std::string url = std::string(scheme) + std::string(in);
    if (auto b = config::parse_backend(url)) {
      FUZZ_CHECK(b->kind == config::BackendUrl::Kind::Unix || (!b->host.empty() && !b->port.empty()));
      FUZZ_CHECK(b->prefix.empty() || (b->prefix.front() == '/' && b->prefix.back() != '/'));
    }
  }
  return 0;
}
