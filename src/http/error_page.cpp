#include "http/error_page.hpp"

#include <fmt/format.h>

namespace certgate::http {
namespace {

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string code_text(const ErrorInfo& e) {
  return e.substatus ? fmt::format("{}.{}", e.status, e.substatus) : std::to_string(e.status);
}

}  // namespace

ErrorInfo from_answer(auth::Verdict answer, std::string reason) {
  const auto& row = auth::info(answer);
  return {row.status, row.substatus, row.win32, std::string(row.title), std::move(reason)};
}

ErrorInfo from_outcome(const auth::Outcome& o) { return from_answer(o.verdict, o.reason); }

bool prefers_json(std::string_view accept) {
  auto json = accept.find("application/json");
  if (json == std::string_view::npos) return false;
  auto html = accept.find("text/html");
  return html == std::string_view::npos || json < html;
}

Response error_response(const ErrorInfo& e, bool detailed, bool json) {
  Response r;
  r.status = e.status;
  r.substatus = e.substatus;
  r.win32 = e.win32;
  const std::string code = code_text(e);
  const std::string phrase(reason_phrase(e.status));
  if (json) {
    r.set("Content-Type", "application/json");
    r.body = fmt::format(R"({{"status":{},"substatus":{},"title":"{}")", e.status, e.substatus,
                         json_escape(e.title));
    // As on the HTML page: the win32 code tells more than the title (revoked or CRL server
    // unreachable, both 403.13), so only a detailed answer carries it.
    if (detailed) r.body += fmt::format(R"(,"win32":{})", e.win32);
    if (detailed && !e.reason.empty()) r.body += fmt::format(R"(,"reason":"{}")", json_escape(e.reason));
    r.body += "}\n";
  } else {
    r.set("Content-Type", "text/html; charset=utf-8");
    r.body = fmt::format(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{0} - {1}</title></head>\n"
        "<body>\n<h1>HTTP Error {0} - {1}</h1>\n<h2>{2}</h2>\n",
        code, html_escape(phrase), html_escape(e.title));
    if (detailed && !e.reason.empty())
      r.body += fmt::format("<p><b>Reason:</b> {}</p>\n", html_escape(e.reason));
    if (detailed && e.win32 != 0)
      r.body += fmt::format("<p>Error code: 0x{:08X}</p>\n", e.win32);
    r.body += "</body></html>\n";
  }
  r.set("Cache-Control", "no-store");
  return r;
}

}  // namespace certgate::http
