#include "http/error_page.hpp"

#include "auth/verdict_advice.hpp"
#include "http/page_text.hpp"

#include <fmt/format.h>

namespace certgate::http {
namespace {

std::string code_text(const ErrorInfo& e) {
  return e.substatus ? fmt::format("{}.{}", e.status, e.substatus) : std::to_string(e.status);
}

// As IIS shows it: a Win32 error as its HRESULT (0x8007052e for 1326), an HRESULT as is.
std::string error_code_text(std::uint32_t win32) {
  const std::uint32_t hresult = win32 < 0x10000 ? (0x80070000u | win32) : win32;
  std::string out = fmt::format("0x{:08x}", hresult);
  if (auto name = auth::win32_name(win32); !name.empty()) out += fmt::format(" ({})", name);
  return out;
}

// One row of the details table: its label on the page, its key in JSON, its value.
struct DetailRow {
  std::string_view label, key;
  std::string value;
};

// Every detail row that has a value, in the order the page shows them.
std::vector<DetailRow> detail_rows(const ErrorInfo& e) {
  const ErrorDetails& d = e.details;
  std::vector<DetailRow> rows;
  auto add = [&rows](std::string_view label, std::string_view key, const std::string& value) {
    if (!value.empty()) rows.push_back({label, key, value});
  };
  add("Requested URL", "url", d.url);
  add("Site", "site", d.site);
  add("Location", "location", d.location);
  add("ssl_flags", "ssl_flags", d.ssl_flags);
  add("Logon method", "logon_method", d.logon_method);
  add("Logon user", "logon_user", d.user);
  add("Certificate subject", "certificate_subject", d.cert_subject);
  add("Certificate issuer", "certificate_issuer", d.cert_issuer);
  add("Certificate serial", "certificate_serial", d.cert_serial);
  add("Certificate validity", "certificate_validity", d.cert_validity);
  if (e.win32 != 0) rows.push_back({"Error code", "error_code", error_code_text(e.win32)});
  return rows;
}

constexpr std::string_view kStyle =
    "*{box-sizing:border-box}"
    "body{margin:0;font:15px/1.5 'Segoe UI',system-ui,-apple-system,'DejaVu Sans',sans-serif;"
    "color:#1f2328;background:#f3f4f6}"
    "header{background:#555;color:#fff;padding:14px 24px}"
    "header h1{margin:0;font-size:1.5em;font-weight:600}"
    "main{max-width:880px;margin:0 auto;padding:16px 24px 32px}"
    ".box{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:14px 18px;"
    "margin:14px 0}"
    ".title{border-left:6px solid #c00}"
    ".title h2{margin:0 0 6px;font-size:1.2em;color:#c00}"
    "h3{margin:0 0 6px;font-size:1em}"
    "ul{margin:0;padding-left:22px}"
    "li{margin:3px 0}"
    ".reason{font-family:ui-monospace,Consolas,'DejaVu Sans Mono',monospace;font-size:.92em;"
    "background:#fff8c5;border:1px solid #d4a72c;border-radius:4px;padding:8px 10px;"
    "overflow-wrap:anywhere}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;vertical-align:top;padding:4px 8px;border-top:1px solid #eaeef2}"
    "th{width:13em;font-weight:600;color:#57606a}"
    "td{font-family:ui-monospace,Consolas,'DejaVu Sans Mono',monospace;font-size:.92em;"
    "overflow-wrap:anywhere}"
    ".rid{font-family:ui-monospace,Consolas,'DejaVu Sans Mono',monospace}"
    "footer{color:#57606a;font-size:.85em}";

std::string html_page(const ErrorInfo& e, bool detailed, const auth::Advice& a) {
  const std::string code = code_text(e);
  const std::string phrase(reason_phrase(e.status));
  std::string out;
  out.reserve(4096);
  out += fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<meta name=\"robots\" content=\"noindex\">"
      "<title>{0} - {1}</title><style>{2}</style></head>\n<body>\n"
      "<header><h1>HTTP Error {0} - {1}</h1></header>\n<main>\n"
      "<div class=\"box title\"><h2>{3}</h2><p>{4}</p></div>\n",
      code, html_text(phrase), kStyle, html_text(e.title), html_text(a.sentence));
  if (detailed && !e.reason.empty())
    out += fmt::format("<div class=\"box\"><h3>Reason</h3><div class=\"reason\">{}</div></div>\n",
                       html_text(e.reason));
  if (!e.issuers.empty()) {
    out += "<div class=\"box\"><h3>Issuers this site accepts</h3><ul>";
    for (const auto& i : e.issuers) out += "<li>" + html_text(i) + "</li>";
    out += "</ul></div>\n";
  }
  if (detailed && !a.causes.empty()) {
    out += "<div class=\"box\"><h3>Most likely causes</h3><ul>";
    for (auto c : a.causes) out += "<li>" + html_text(c) + "</li>";
    out += "</ul></div>\n";
  }
  out += "<div class=\"box\"><h3>Things you can try</h3><ul>";
  for (auto t : a.things_to_try) out += "<li>" + html_text(t) + "</li>";
  out += "</ul></div>\n";
  out += "<div class=\"box\"><h3>Details</h3><table>";
  if (detailed)
    for (const auto& row : detail_rows(e))
      out += fmt::format("<tr><th>{}</th><td>{}</td></tr>", row.label, html_text(row.value));
  out += fmt::format("<tr><th>Request id</th><td class=\"rid\" id=\"request-id\">{}</td></tr>",
                     html_text(e.request_id));
  out += "</table></div>\n<footer>certgate</footer>\n</main>\n</body></html>\n";
  return out;
}

std::string text_page(const ErrorInfo& e, bool detailed, const auth::Advice& a) {
  std::string out = fmt::format("HTTP Error {} - {}\n{}\n\n{}\n", code_text(e),
                                reason_phrase(e.status), e.title, a.sentence);
  if (detailed && !e.reason.empty()) out += "\nReason: " + plain_text(e.reason) + "\n";
  if (!e.issuers.empty()) {
    out += "\nIssuers this site accepts:\n";
    for (const auto& i : e.issuers) out += "  - " + plain_text(i) + "\n";
  }
  out += "\nThings you can try:\n";
  for (auto t : a.things_to_try) out += fmt::format("  - {}\n", t);
  out += "\n";
  if (detailed)
    for (const auto& row : detail_rows(e)) out += fmt::format("{}: {}\n", row.label, plain_text(row.value));
  out += fmt::format("Request id: {}\n", e.request_id);
  return out;
}

std::string json_page(const ErrorInfo& e, bool detailed, const auth::Advice& a) {
  std::string out = fmt::format(R"({{"status":{},"substatus":{},"title":{},"message":{})",
                                e.status, e.substatus, json_text(e.title),
                                json_text(a.sentence));
  // As on the HTML page: the win32 code tells more than the title (revoked or CRL server
  // unreachable, both 403.13), so only a detailed answer carries it.
  if (detailed) out += fmt::format(R"(,"win32":{})", e.win32);
  if (detailed && !e.reason.empty()) out += R"(,"reason":)" + json_text(e.reason);
  if (!e.issuers.empty()) {
    out += R"(,"issuers":[)";
    for (std::size_t i = 0; i < e.issuers.size(); ++i) {
      if (i) out += ',';
      out += json_text(e.issuers[i]);
    }
    out += "]";
  }
  out += R"(,"things_to_try":[)";
  for (std::size_t i = 0; i < a.things_to_try.size(); ++i) {
    if (i) out += ',';
    out += json_text(a.things_to_try[i]);
  }
  out += "]";
  if (detailed) {
    out += R"(,"details":{)";
    bool first = true;
    for (const auto& row : detail_rows(e)) {
      if (!first) out += ',';
      out += json_text(row.key);
      out += ':';
      out += json_text(row.value);
      first = false;
    }
    out += "}";
  }
  out += R"(,"request_id":)" + json_text(e.request_id) + "}\n";
  return out;
}

const CustomPage* custom_for(const CustomPages* pages, int status, int substatus) {
  if (pages == nullptr) return nullptr;
  const CustomPage* any = nullptr;
  for (const auto& p : *pages) {
    if (p.status != status) continue;
    if (p.substatus == substatus) return &p;
    if (p.substatus == -1) any = &p;
  }
  return any;
}

}  // namespace

ErrorInfo from_answer(auth::Verdict answer, std::string reason) {
  const auto& row = auth::info(answer);
  ErrorInfo e{answer, row.status, row.substatus, row.win32, std::string(row.title), std::move(reason), {}, {}, {}};
  return e;
}

ErrorInfo from_outcome(const auth::Outcome& o) { return from_answer(o.verdict, o.reason); }

PageFormat page_format(std::string_view accept) {
  constexpr std::size_t none = std::string_view::npos;
  const std::size_t h = accept.find("text/html"), j = accept.find("application/json"),
                    t = accept.find("text/plain");
  if (j != none && j < h && j < t) return PageFormat::Json;
  if (t != none && t < h && t < j) return PageFormat::Text;
  return PageFormat::Html;
}

std::string_view content_type(PageFormat format) {
  switch (format) {
    case PageFormat::Json: return "application/json";
    case PageFormat::Text: return "text/plain; charset=utf-8";
    case PageFormat::Html: break;
  }
  return "text/html; charset=utf-8";
}

Response error_response(const ErrorInfo& e, bool detailed, PageFormat format,
                        const CustomPages* custom) {
  Response r;
  r.status = e.status;
  r.substatus = e.substatus;
  r.win32 = e.win32;
  r.reason = e.reason;
  const auth::Advice& a = auth::advice_for(e.answer);
  // As IIS's errorMode="DetailedLocalOnly": the administrator's page for those who get no
  // detail; the detailed page for the others.
  const CustomPage* own = !detailed && format == PageFormat::Html ? custom_for(custom, e.status, e.substatus) : nullptr;
  r.set("Content-Type", std::string(content_type(format)));
  if (own) r.body = own->body;
  else if (format == PageFormat::Json) r.body = json_page(e, detailed, a);
  else if (format == PageFormat::Text) r.body = text_page(e, detailed, a);
  else r.body = html_page(e, detailed, a);
  r.set("Cache-Control", "no-store");
  if (!e.request_id.empty()) r.set("X-Request-Id", std::string(e.request_id));
  return r;
}

}  // namespace certgate::http
