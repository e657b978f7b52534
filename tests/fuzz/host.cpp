// Authorities: the Host header value that picks a site (host_key), an absolute-form target
// (split_target), and the backend URL whose
// authority becomes the forwarded Host (parse_backend). The input is tried as both.
#include "config/backend.hpp"
#include "fuzz_util.hpp"
#include "http/path.hpp"

using namespace certgate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = fuzz::bytes(data, size);
  if (auto h = http::host_key(in)) {
    FUZZ_CHECK(h->size() <= in.size());
    for (unsigned char c : *h) {
      FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
      // Only what can name a host survives: never a byte that could split a header or a path.
      FUZZ_CHECK(c > ' ' && c < 0x7f && c != '/' && c != '@' && c != '?' && c != '#');
    }
    // Brackets and the port are gone: what is left is the name alone.
    if (in.empty() || in.front() != '[') FUZZ_CHECK(h->find(':') == std::string::npos);
    FUZZ_CHECK(h->find('[') == std::string::npos && h->find(']') == std::string::npos);
    // Routing folds case: any spelling of one name picks the same site.
    std::string upper(in);
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    auto hu = http::host_key(upper);
    FUZZ_CHECK(hu && *hu == *h);
  }
  // Absolute-form targets: the authority is what routes, the origin what the policy sees.
  if (auto form = http::split_target(in)) {
    FUZZ_CHECK(!form->origin.empty() && form->origin.front() == '/');
    FUZZ_CHECK(form->authority.find('@') == std::string_view::npos);
  }

  for (std::string_view scheme : {"", "http://", "https://"}) {
    std::string url = std::string(scheme) + std::string(in);
    if (auto b = config::parse_backend(url)) {
      FUZZ_CHECK(b->kind == config::BackendUrl::Kind::Unix || (!b->host.empty() && !b->port.empty()));
      FUZZ_CHECK(b->prefix.empty() || (b->prefix.front() == '/' && b->prefix.back() != '/'));
    }
  }
  return 0;
}
