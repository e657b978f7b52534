#pragma once
// The connection's side of the token-login cookie: the certificate a valid cookie stands for,
// as the TLS facts the evidence pipeline takes (pipeline/evidence.hpp), kept while the same
// cookie comes back on the same connection under the same configuration generation, so a
// keep-alive client costs one MAC check and one decoding, not one per request.
#include "runtime/snapshot.hpp"
#include "tls/tls_facts.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::token {

class CookieSession {
 public:
  // The facts for `cookie_header`'s token cookie at `site`; null when there is none or it does
  // not hold (bad MAC, another site's, expired). `connection`: the connection's TLS state (null
  // on plain HTTP), whose protocol and cipher strength the facts take.
  tls::TlsFacts* facts(const runtime::SiteRuntime& site, std::uint64_t generation, std::string_view cookie_header,
                       std::int64_t now, const tls::TlsFacts* connection);

 private:
  std::string value_;
  std::size_t site_ = SIZE_MAX;
  std::uint64_t generation_ = 0;
  std::int64_t expires_ = 0;
  std::optional<tls::TlsFacts> facts_;
};

// The certificate's notAfter in unix seconds (INT64_MAX when it cannot be read: the session's
// own lifetime bounds the cookie then).
std::int64_t not_after(X509* cert);

// Facts for a certificate that came outside the handshake, on this connection's TLS (or none).
tls::TlsFacts facts_for(const std::vector<pki::X509Ptr>& certs, const tls::TlsFacts* connection);

}  // namespace certgate::token
