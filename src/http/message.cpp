#include "http/message.hpp"

#include <unistd.h>

#include <charconv>
#include <ctime>

namespace certgate::http {

namespace {
// ASCII only, as header names are (RFC 9110 §5.1); no locale lookup per character.
constexpr unsigned char ascii_lower(unsigned char c) {
  return static_cast<unsigned char>(c + (static_cast<unsigned char>(c - 'A') < 26 ? 32 : 0));
}
}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x != y && ascii_lower(x) != ascii_lower(y)) return false;
  }
  return true;
}

std::string_view Request::header(std::string_view name) const {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return h.value;
  return {};
}

bool Request::has_header(std::string_view name) const {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return true;
  return false;
}

void BodyFraming::transfer_encoding(std::string_view value) {
  ++transfer_encodings_;
  transfer_encoding_ = value;
}

void BodyFraming::content_length(std::string_view value) {
  ++content_lengths_;
  content_length_ = value;
}

BodyFraming::Refusal BodyFraming::refusal(int version) const {
  if (content_lengths_ > 1 || content_length_.find(',') != std::string_view::npos)
    return {auth::Verdict::Http400_BadRequest, "the request has more than one Content-Length"};
  if (transfer_encodings_ == 0) return {};
  if (version < 11)
    return {auth::Verdict::Http400_BadRequest, "an HTTP/1.0 request cannot carry Transfer-Encoding (RFC 9112 §6.1)"};
  if (content_lengths_ > 0)
    return {auth::Verdict::Http400_BadRequest, "the request has both Transfer-Encoding and Content-Length (RFC 9112 §6.3)"};
  if (transfer_encodings_ > 1) return {auth::Verdict::Http400_BadRequest, "the request has more than one Transfer-Encoding"};
  // The codings, trimmed of optional whitespace; the last must be chunked, and only it.
  std::string_view last;
  int codings = 0, chunked = 0;
  std::string_view rest = transfer_encoding_;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view coding = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) coding.remove_prefix(1);
    while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) coding.remove_suffix(1);
    if (coding.empty()) continue;
    ++codings;
    last = coding;
    if (iequals(coding, "chunked")) ++chunked;
  }
  if (!iequals(last, "chunked"))
    return {auth::Verdict::Http400_BadRequest, "the request's Transfer-Encoding does not end in chunked: its body length "
                 "cannot be determined (RFC 9112 §6.3)"};
  if (chunked > 1) return {auth::Verdict::Http400_BadRequest, "the request's Transfer-Encoding applies chunked more than once"};
  if (codings > 1)
    return {auth::Verdict::Http501_TransferCoding, "the request's body is sent with a transfer coding other than chunked (such as "
                 "gzip), which certgate does not decode (RFC 9112 §6.1)"};
  return {};
}

OpenFile::~OpenFile() {
  if (fd >= 0) ::close(fd);
}

void Response::set(std::string name, std::string value) {
  for (auto& h : headers)
    if (iequals(h.name, name)) {
      h.value = std::move(value);
      return;
    }
  headers.push_back({std::move(name), std::move(value)});
}

std::string_view Response::header(std::string_view name) const {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return h.value;
  if (!prepared) return {};
  std::string_view rest = prepared->headers, n, v;
  while (next_prepared_header(rest, n, v))
    if (iequals(n, name)) return v;
  return {};
}

bool next_prepared_header(std::string_view& rest, std::string_view& name, std::string_view& value) {
  while (!rest.empty()) {
    const auto end = rest.find("\r\n");
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    name = line.substr(0, colon);
    value = line.substr(std::min(colon + 2, line.size()));
    return true;
  }
  return false;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string http_date(std::int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

// The Date header changes once a second; format it once per second per thread, in place.
std::string_view http_date_now() {
  thread_local std::time_t last = 0;
  thread_local char text[40];
  thread_local std::size_t size = 0;
  std::time_t now = std::time(nullptr);
  if (now != last) {
    last = now;
    std::tm tm{};
    gmtime_r(&now, &tm);
    size = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  }
  return {text, size};
}

std::string serialize_head(const Response& r, int version, bool keep_alive) {
  std::string out;
  out.reserve(256 + r.headers.size() * 48);
  serialize_head(out, r, version, keep_alive);
  return out;
}

void serialize_head(std::string& out, const Response& r, int version, bool keep_alive) {
  char digits[24];
  auto number = [&](std::uint64_t v) {
    return std::string_view(digits, static_cast<std::size_t>(std::to_chars(digits, digits + sizeof digits, v).ptr - digits));
  };
  if (r.status == 200) {
    out += version == 10 ? std::string_view("HTTP/1.0 200 OK\r\nServer: certgate\r\nDate: ")
                         : std::string_view("HTTP/1.1 200 OK\r\nServer: certgate\r\nDate: ");
  } else {
    out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out += number(static_cast<std::uint64_t>(r.status));
    out += ' ';
    out += reason_phrase(r.status);
    out += "\r\nServer: certgate\r\nDate: ";
  }
  out += http_date_now();
  out += "\r\n";
  for (const auto& h : r.headers) {
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  if (r.prepared) out += r.prepared->headers;
  auto own_cache_control = [&r] {
    for (const auto& h : r.headers)
      if (!h.value.empty() && iequals(h.name, "Cache-Control")) return true;
    return r.prepared && r.prepared->has_cache_control;
  };
  if (!r.cache_control.empty() && !own_cache_control()) {
    out += "Cache-Control: ";
    out += r.cache_control;
    out += "\r\n";
  }
  if (r.status != 304 && r.status != 204 && r.status >= 200) {
    out += "Content-Length: ";
    out += number(r.content_length());
    out += "\r\n";
  }
  if (!keep_alive) out += "Connection: close\r\n";
  else if (version == 10) out += "Connection: keep-alive\r\n";
  out += "\r\n";
}

}  // namespace certgate::http
