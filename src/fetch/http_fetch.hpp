#pragma once
// Fetches one URL for revocation checking (CRL, OCSP, AIA caIssuers), asynchronously on the
// caller's io_context: http and https only, every step under one deadline, the body capped,
// redirects limited to http(s) and counted. Nothing else in certgate opens outbound
// connections to addresses taken from certificates, so this is where SSRF is bounded.
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace certgate::fetch {

struct Request {
  std::string url;
  std::string method = "GET";
  std::string content_type;  // POST body type (application/ocsp-request)
  std::string body;
  std::uint32_t timeout_ms = 15000;   // the whole exchange, redirects included
  std::size_t max_bytes = 10 << 20;   // response body cap
  int max_redirects = 3;
  // Where host names are looked up (asio resolves on one thread per io_context, one name at a
  // time): null = `io`'s own. Fetches any chain can cause resolve apart, so that a name whose
  // lookup hangs never delays a fetch for a trusted path. Its thread must run that io_context.
  boost::asio::io_context* resolver_io = nullptr;
};

struct Result {
  bool ok = false;         // a 200 answer, complete, within the limits
  int status = 0;          // HTTP status of the last answer (0 = none)
  std::string body;
  std::string error;       // why not ok, in words: "timed out after 500 ms", "body over 1048576 bytes"
  std::string final_url;   // after redirects
  std::chrono::milliseconds elapsed{0};
};

// Parsed http(s) URL; false when the scheme is not http/https or the URL is malformed.
struct Url {
  bool https = false;
  std::string host;
  std::string port;
  std::string target;  // path and query, "/" when empty
};
bool parse_url(const std::string& text, Url& out);

// `done` runs on `io`'s thread.
void http_fetch(boost::asio::io_context& io, Request req, std::function<void(Result)> done);

}  // namespace certgate::fetch
