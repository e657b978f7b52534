#pragma once
// The body of every error answer (spec: behaviour.md §1, last paragraph): the IIS-style title
// band (from the catalogue), one sentence and the things to try (auth/verdict_advice.hpp) and the
// request id for everyone; the precise reason and a details table only when detail is allowed
// for this client. HTML, plain text or JSON by the request's Accept; an administrator's own
// page (IIS <httpErrors>) in place of the HTML for clients that get no detail.
#include "auth/verdict.hpp"
#include "http/message.hpp"

#include <string>
#include <vector>

namespace certgate::http {

// What a detailed page shows about the request (empty fields are left out).
struct ErrorDetails {
  std::string url, site, location, ssl_flags, logon_method, user;
  std::string cert_subject, cert_issuer, cert_serial, cert_validity;  // empty: none was sent
};

struct ErrorInfo {
  auth::Verdict answer = auth::Verdict::Http400_BadRequest;
  int status;
  int substatus;
  std::uint32_t win32;
  std::string title;   // "Client certificate is untrusted or invalid"
  std::string reason;  // "issuer 'CN=X' is not in this site's trusted list"
  std::string_view request_id;
  ErrorDetails details;
  std::vector<std::string> issuers;  // 403.7: the issuers the site accepts (public: the CA list)
};

// One administrator-supplied page: the file's bytes, read when the configuration was loaded.
struct CustomPage {
  int status;
  int substatus;  // -1: every substatus of `status`
  std::string body;
};
using CustomPages = std::vector<CustomPage>;

enum class PageFormat { Html, Json, Text };

// The catalogue row of `answer` (auth/verdict.hpp) with this request's reason.
ErrorInfo from_answer(auth::Verdict answer, std::string reason);
ErrorInfo from_outcome(const auth::Outcome& outcome);

// `detailed`: include the reason and the details table. `custom`: the site's own pages.
Response error_response(const ErrorInfo& e, bool detailed, PageFormat format,
                        const CustomPages* custom = nullptr);

// The format the Accept header ranks first among text/html, application/json and text/plain
// (by position; HTML when it names none of them).
PageFormat page_format(std::string_view accept);
std::string_view content_type(PageFormat format);

}  // namespace certgate::http
