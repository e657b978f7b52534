// Raw bytes from a client, down the path a request head takes before any policy: Beast's
// request parser with certgate's limits (as http/connection.cpp sets them), certgate's own
// head checks, target normalisation, Host, and the header parsers the handler runs
// (Authorization: Basic, Accept, Range, If-None-Match).
#include "config/config.hpp"
#include "fuzz_util.hpp"
#include "http/basic_auth.hpp"
#include "http/error_page.hpp"
#include "http/message.hpp"
#include "http/path.hpp"
#include "http/static_files.hpp"

#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>

namespace bhttp = boost::beast::http;
using namespace certgate;

namespace {

// Feeds everything, as the socket reads would; stops at an error or when the parser wants more.
bool feed(bhttp::request_parser<bhttp::string_body>& p, std::string_view& in, bool header_only) {
  while (!(header_only ? p.is_header_done() : p.is_done())) {
    boost::beast::error_code ec;
    std::size_t n = p.put(boost::asio::buffer(in.data(), in.size()), ec);
    in.remove_prefix(n);
    if (ec == bhttp::error::need_more) {
      // Beast consumes a head only whole: with every byte offered, need_more means the peer
      // would have to send more (or close).
      if (n > 0 && !in.empty()) continue;
      p.put_eof(ec);
      return !ec && (header_only ? p.is_header_done() : p.is_done());
    }
    if (ec) return false;
    if (n == 0) return false;
  }
  return true;
}

void check_request(const http::Request& req) {
  if (auto form = http::split_target(req.target)) {
    if (auto t = http::normalize_target(form->origin)) {
      // What goes to a backend is the path the policy saw, re-encoded (printable ASCII, no
      // fragment), then the query as received: never a byte that ends the request line.
      if (auto fwd = http::forward_target(*t)) {
        FUZZ_CHECK(!fwd->empty() && fwd->front() == '/');
        const std::size_t q = std::min(fwd->find('?'), fwd->size());
        for (std::size_t i = 0; i < fwd->size(); ++i) {
          const auto c = static_cast<unsigned char>((*fwd)[i]);
          FUZZ_CHECK(c > ' ' && c != 0x7f);
          if (i < q) FUZZ_CHECK(c < 0x7f && c != '#');
        }
      }
    }
  }
  (void)http::host_key(req.header("Host"));
  (void)http::page_format(req.header("Accept"));
  if (auto cred = http::parse_basic(req.header("Authorization"))) {
    FUZZ_CHECK(http::is_basic(req.header("Authorization")));
  }
  for (std::uint64_t size : {0ull, 1ull, 1000ull, ~0ull}) {
    bool unsatisfiable = false;
    if (auto r = http::parse_range(req.header("Range"), size, unsatisfiable)) {
      FUZZ_CHECK(r->offset <= size && r->length <= size - r->offset);
    }
  }
  (void)http::etag_matches(req.header("If-None-Match"), "\"abc-123\"");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const config::Limits limits;
  std::string_view in = fuzz::bytes(data, size);
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.body_limit(limits.max_body_bytes);
  if (!feed(parser, in, true)) return 0;

  const auto& msg = parser.get();
  http::Request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  req.version = msg.version();
  std::size_t count = 0;
  http::BodyFraming framing;  // as the connection judges it, before anything is decided
  for (const auto& f : msg) {
    if (++count > limits.max_headers) return 0;
    req.headers.push_back({std::string(f.name_string()), std::string(f.value())});
    if (f.name() == bhttp::field::transfer_encoding) framing.transfer_encoding(f.value());
    else if (f.name() == bhttp::field::content_length) framing.content_length(f.value());
  }
  if (framing.refusal(msg.version()).answer) return 0;
  if (req.target.size() > limits.max_url_bytes) return 0;
  check_request(req);

  // The body, as a proxied or drained request reads it (chunked decoding included): never more
  // than the limit.
  if (feed(parser, in, false)) FUZZ_CHECK(parser.get().body().size() <= limits.max_body_bytes);
  return 0;
}
