// libcurl's LDAP output as a hostile directory can shape it (DN and attribute lines, base64
// values of any length), read by fetch::ldap_value; and a URL a certificate names, judged by
// fetch::bound_search_problem. First byte: the cap (low 7 bits × 64) and which value is wanted
// (high bit: a certificate, else a CRL); the rest is the LDIF text, and its first line the URL.
#include "fetch/fetcher.hpp"
#include "fuzz_util.hpp"

using namespace certgate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto want = data[0] & 0x80 ? fetch::LdapValue::Certificate : fetch::LdapValue::Crl;
  const std::size_t cap = static_cast<std::size_t>(data[0] & 0x7f) * 64;
  const std::string_view ldif = fuzz::bytes(data + 1, size - 1);
  std::string value, error;
  if (fetch::ldap_value(ldif, want, cap, value, error)) {
    FUZZ_CHECK(value.size() <= cap);
    FUZZ_CHECK(error.empty());
  } else {
    FUZZ_CHECK(!error.empty());
  }
  const std::string_view url = ldif.substr(0, ldif.find('\n'));
  const std::string why = fetch::bound_search_problem(url, want);
  // What passes is a base search: its DN right after the host, no other scope, no fragment.
  if (why.empty()) {
    FUZZ_CHECK(url.find('#') == std::string_view::npos);
    const std::size_t path = url.find_first_of("/?", url.find("://") + 3);
    FUZZ_CHECK(url.find("://") != std::string_view::npos && path != std::string_view::npos && url[path] == '/');
    const std::string_view query = url.substr(path);
    FUZZ_CHECK(query.find("?sub") == std::string_view::npos && query.find("?one") == std::string_view::npos);
  }
  return 0;
}
