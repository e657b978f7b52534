#pragma once
// The body of every error answer: status.substatus, the IIS-style title and, when detail is
// allowed for this client, the precise reason (spec: behaviour.md §1, last paragraph).
#include "auth/verdict.hpp"
#include "http/message.hpp"

#include <string>

namespace certgate::http {

struct ErrorInfo {
  int status;
  int substatus;
  std::uint32_t win32;
  std::string title;   // "Client certificate is untrusted or invalid"
  std::string reason;  // "issuer 'CN=X' is not in this site's trusted list"
};

// The catalogue row of `answer` (auth/verdict.hpp) with this request's reason.
ErrorInfo from_answer(auth::Verdict answer, std::string reason);
ErrorInfo from_outcome(const auth::Outcome& outcome);

// `detailed`: include the reason; `json`: the client prefers application/json.
Response error_response(const ErrorInfo& e, bool detailed, bool json);

// True when the Accept header prefers JSON over HTML.
bool prefers_json(std::string_view accept);

}  // namespace certgate::http
