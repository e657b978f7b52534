#pragma once
// Step-up (docs/on-demand.md): how a client that cannot be asked for a certificate after the
// handshake (TLS 1.3 without post-handshake auth: every browser) gets one to count at an
// on-demand location. The protected site redirects to its [sites.step_up] URL with a return URL
// it signed; that binding, which asks at the handshake, validates and maps the certificate for
// the protected site through the normal pipeline and redirects back with a single-use ticket
// (60 s); /.certgate/step-up/complete turns it into a MAC'd cookie (src/session/) that stands for
// the certificate, validated again at every request. No sockets here.
#include "http/handler.hpp"
#include "session/token.hpp"
#include "state/store.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace certgate::http {

inline constexpr std::string_view kStepUpPath = "/.certgate/step-up";

// The reserved path and everything under it.
bool is_step_up_path(std::string_view path);

// Need::Certificate met by a cookie on `c.site`: the certificate it stands for, or null (`why`).
std::unique_ptr<tls::TlsFacts> certificate_from_cookie(const ConnectionInfo& c, const Request& req,
                                                       std::string& why);

// 303 (GET, HEAD) or 401 with Location: to `c.site`'s step-up URL, returning to this request.
Response step_up_redirect(const ConnectionInfo& c, const Request& req, auth::Outcome& outcome);

// /.certgate/step-up?return=..&sig=.. on the step-up binding: the protected site and the return
// URL it signed (StepUpBegin, http/handler.hpp), or an answer that refuses the request.
bool begin_step_up(const ConnectionInfo& c, const Request& req, std::string_view query, StepUpBegin& out,
                   Response& refusal, auth::Outcome& outcome);
// After the pipeline decided `outcome` for the protected site with the presented certificate.
Response finish_step_up(const ConnectionInfo& c, const Request& req, const StepUpBegin& begin, auth::Outcome& outcome,
                        X509* leaf, STACK_OF(X509) * chain, std::optional<Handled::SingleUse>& single_use);

// /.certgate/step-up/complete and /logout on the protected site; anything else under the prefix is 404.
// `single_use`: the ticket to take from the store before the answer may go out.
Response step_up_endpoint(const ConnectionInfo& c, const Request& req, std::string_view path, std::string_view query,
                          auth::Outcome& outcome, std::optional<Handled::SingleUse>& single_use);

// The namespace of step-up tickets in the single-use store.
inline constexpr std::string_view kStepUpStoreNamespace = "step-up";

// After the store answered for h.single_use: `h` unchanged when it is Done, else its answer
// replaced by the refusal (403.7 used or unknown ticket, 503 store unavailable).
void step_up_after_store(const ConnectionInfo& c, const Request& req, Handled& h, state::Status status,
                         const std::string& error);

}  // namespace certgate::http
