#pragma once
// certgate's own request and response values. Only http/connection.* knows Beast's message
// types, so HTTP/2 can later feed the same handler.
#include "auth/verdict.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::http {

struct Header {
  std::string name;
  std::string value;
};

bool iequals(std::string_view a, std::string_view b);

struct Request {
  std::string method;
  std::string target;  // as received: "/a%20b?x=1"
  int version = 11;    // 10 or 11
  std::vector<Header> headers;

  // First value of a header, case-insensitive; empty when absent.
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const;
};

// The framing headers of a request head (RFC 9112 §6), judged strictly: a message whose body
// length two parsers could read differently is the stuff of request smuggling, so anything but
// one plain Content-Length or one Transfer-Encoding of exactly "chunked" is refused rather
// than guessed at. Fed each Transfer-Encoding and Content-Length field in order.
class BodyFraming {
 public:
  struct Refusal {
    std::optional<auth::Verdict> answer;  // none: the head may be served
    std::string_view reason;
  };
  void transfer_encoding(std::string_view value);
  void content_length(std::string_view value);
  Refusal refusal(int version) const;

 private:
  int transfer_encodings_ = 0, content_lengths_ = 0;
  std::string_view transfer_encoding_, content_length_;
};

// An open file shared by the responses that send slices of it.
struct OpenFile {
  int fd = -1;
  ~OpenFile();
};

struct FileSlice {
  std::shared_ptr<OpenFile> file;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

// An answer kept by the file cache: its headers serialised ("Name: value\r\n" each) and its
// body, shared by every response sent from it.
struct PreparedAnswer {
  std::string headers;
  std::string body;
  bool has_cache_control = false;  // `headers` has a Cache-Control (known once, not per answer)
};

struct Response {
  int status = 200;
  int substatus = 0;
  std::uint32_t win32 = 0;
  std::vector<Header> headers;
  std::string body;
  std::optional<FileSlice> file;  // sent after the head instead of `body`
  // Sent after `headers` and instead of `body`: answering from the cache copies nothing.
  std::shared_ptr<const PreparedAnswer> prepared;
  bool head_only = false;         // HEAD: Content-Length of the body, no body bytes
  bool close = false;             // close the connection after this response
  // Sent as Cache-Control unless the headers carry one: an authenticated answer's policy
  // (into the configuration, so setting it costs no allocation per request).
  std::string_view cache_control;
  std::string reason;  // an error answer's precise reason, for the W3C log's x-reason

  void set(std::string name, std::string value);
  std::uint64_t content_length() const { return file ? file->length : body_bytes().size(); }
  std::string_view body_bytes() const { return prepared ? std::string_view(prepared->body) : std::string_view(body); }
  // A header's value, from `headers` or the prepared ones; empty when absent.
  std::string_view header(std::string_view name) const;
};

// The next "Name: value\r\n" line of a PreparedAnswer's headers, consumed from `rest`; false at
// the end.
bool next_prepared_header(std::string_view& rest, std::string_view& name, std::string_view& value);

// Status line and headers, with Content-Length, Date, Server and Connection added.
std::string serialize_head(const Response& r, int version, bool keep_alive);
// The same, appended to `out` (a connection reuses one string for every answer).
void serialize_head(std::string& out, const Response& r, int version, bool keep_alive);
std::string_view reason_phrase(int status);
std::string http_date(std::int64_t unix_seconds);
// The Date header's value now, formatted once a second per thread (valid until the next call on
// this thread in a later second).
std::string_view http_date_now();

}  // namespace certgate::http
