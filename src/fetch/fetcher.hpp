#pragma once
// Fetches URLs for revocation checking (CRL, OCSP, AIA caIssuers) with libcurl's multi
// interface: http, https, ldap and ldaps in one place, every transfer on its owner's thread,
// under one deadline, the answer capped, redirects limited to http(s) and counted, host names
// looked up by libcurl's threaded resolver (one slow answer never holds another fetch).
// Nothing else in certgate opens outbound connections to addresses taken from certificates,
// so this is where SSRF is bounded.
#include "config/config.hpp"
#include "runtime/clock.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::fetch {

// What an LDAP answer must hold: the attribute the body is taken from.
enum class LdapValue : std::uint8_t { Crl, Certificate };

struct Request {
  std::string url;
  std::string method = "GET";
  std::string content_type;  // POST body type (application/ocsp-request)
  std::string body;
  std::uint32_t timeout_ms = 15000;  // the whole exchange: lookup, connect, redirects, transfer
  std::size_t max_bytes = 10 << 20;  // response body cap (an LDAP value: decoded)
  int max_redirects = 3;
  LdapValue ldap_value = LdapValue::Crl;
};

struct Result {
  bool ok = false;         // a 200 answer (or an LDAP value), complete, within the limits
  int status = 0;          // HTTP status of the last answer (0 = none)
  std::string body;
  std::string error;       // why not ok, in words: "timed out after 500 ms", "answer larger than 1048576 bytes"
  std::string final_url;   // after redirects (the LDAP host's URL for a host-less one)
  std::string route;       // "direct", "via proxy http://p:3128", "via ldap host ldap://dc1:389", "none (not started)"
  std::int64_t elapsed_ms = 0;
};

// Whether `host` is reached directly under a no_proxy list (curl's rules: "*", names and their
// subdomains, a leading dot ignored, IP addresses and CIDR ranges).
bool no_proxy_matches(const std::vector<std::string>& no_proxy, std::string_view host);

// The first value of the wanted attribute in libcurl's LDAP output ("DN: …" then one
// "\tattribute: value" or "\tattribute:: base64" line per value); false when there is none or
// it decodes to more than `max_bytes`.
bool ldap_value(std::string_view ldif, LdapValue want, std::size_t max_bytes, std::string& out, std::string& error);

// Why an ldap URL sent to one of the configured directory hosts (host-less, or naming one) is
// refused, "" when it is not: those are searched with the bind, so the URL must be what AD CS
// writes — the wanted value's attributes, a base search, at most an objectClass filter, no
// extensions.
std::string bound_search_problem(std::string_view url, LdapValue want);

class Fetcher {
 public:
  // `settings` chooses proxy and directory hosts; the environment's proxy variables are read
  // here, once.
  Fetcher(const config::FetchSettings& settings, const runtime::Clock& clock);
  ~Fetcher();
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  // Owner thread only. `done` runs on it, from run_once(), exactly once (unless the Fetcher is
  // destroyed first).
  void start(Request req, std::function<void(Result)> done);
  // Drives the transfers: waits up to `max_wait_ms` for network activity, a transfer's own
  // timeout or wake(), then finishes what is done. Owner thread only.
  void run_once(int max_wait_ms);
  // Makes a run_once() waiting on another thread return now. Any thread.
  void wake();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace certgate::fetch
