#pragma once
// What certgate tells a backend about the caller (spec: behaviour.md §7): the request head it
// forwards, with every incoming header certgate may set removed first (any case, any number of
// repetitions, '_' or '-'), names with '_' dropped unless the site allows them, hop-by-hop headers
// dropped (RFC 9110 §7.6.1), and its own identity headers added.
#include "auth/verdict.hpp"
#include "config/backend.hpp"
#include "config/config.hpp"
#include "http/message.hpp"

#include <openssl/x509.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::http {

using config::BackendUrl;


// The facts the forwarded head is built from.
struct ForwardInput {
  const Request& req;
  std::string_view target;  // origin-form, as the policy saw it (http/path.hpp forward_target)
  std::string_view host;    // the request's authority: absolute-form target, else Host
  const config::Forward& cfg;
  const BackendUrl& backend;
  bool preserve_host = false;
  std::string_view client_ip;
  bool https = true;
  // The decision: its user, and whether it validated and mapped the certificate below. A
  // certificate the decision did not vouch for is never forwarded, whatever `leaf` holds.
  const auth::Outcome& who;
  X509* leaf = nullptr;             // the client certificate (null when none)
  STACK_OF(X509)* chain = nullptr;  // what the client sent after the leaf
  std::string assertion;            // signed JWT, "" when off
  bool strip_authorization = false;  // certgate consumed the Basic credentials itself
  bool websocket = false;           // keep Upgrade / Connection: upgrade
  std::array<std::string_view, 2> own_cookies;  // dropped from Cookie (ProxyPlan::own_cookies)
};

// Headers a client may never set: certgate's own identity headers in every format. Names
// compare case-insensitively with '_' read as '-', as CGI, WSGI, PHP and Rack read them.
bool is_identity_header(std::string_view name, const config::Forward& cfg);
bool is_hop_by_hop(std::string_view name, std::string_view connection_header);

// "METHOD target HTTP/1.1\r\n...headers...\r\n" without the final blank line or framing
// headers (Content-Length / Transfer-Encoding), which the caller adds.
std::string forwarded_head(const ForwardInput& in);
// The identity headers alone (name, value), for tests and `explain`.
std::vector<Header> identity_headers(const ForwardInput& in);

}  // namespace certgate::http
