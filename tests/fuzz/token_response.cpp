// The token login's hostile inputs (token/signed_response.hpp, token/cookie.hpp): a signed
// response body (JSON or CMS, DER / PEM / base64) and a session cookie value. The first byte
// chooses: 'j' JSON, 'c' CMS (nonce of 43 'A's in the query), anything else a cookie.
#include "fuzz_util.hpp"
#include "token/cookie.hpp"
#include "token/signed_response.hpp"

using namespace certgate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = fuzz::bytes(data, size);
  if (in.empty()) return 0;
  const std::string_view body = in.substr(1);
  if (in[0] == 'j' || in[0] == 'c') {
    static const std::string nonce(token::kNonceChars, 'A');
    const token::Parsed p =
        token::parse_and_verify(body, in[0] == 'j' ? "application/json; charset=utf-8" : "application/pkcs7-signature", nonce);
    if (p.ok) {
      // Accepted only with a signer, within the chain bound, over a well-formed nonce.
      FUZZ_CHECK(!p.response.certs.empty() && p.response.certs.size() <= token::kMaxChain);
      FUZZ_CHECK(token::well_formed_nonce(p.response.nonce));
      FUZZ_CHECK(p.error.empty());
    } else {
      FUZZ_CHECK(!p.error.empty());
    }
    return 0;
  }
  static const std::string key(32, 'k');
  if (auto chain = token::open_cookie(key, "A", 0, body)) FUZZ_CHECK(!chain->certs.empty() && chain->certs.size() <= token::kMaxChain);
  return 0;
}
