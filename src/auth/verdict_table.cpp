#include "auth/verdict.hpp"

#include <array>

namespace certgate::auth {
namespace {

// spec: behaviour.md §5 (status table). The title is the error page's heading: as on IIS it
// belongs to status.substatus, save where one status.substatus covers answers a user must tell
// apart (403.16: an untrusted certificate, or a valid one mapped to no account), where the
// title follows status.substatus.win32; the win32 column tells rows of one status.substatus apart in the log.
// Where behaviour.md is silent, win32 is what IIS logs for the same answer, or 0 where IIS has
// no such answer (docs/status-codes.md says which).
constexpr std::string_view kUntrusted = "Client certificate is untrusted or invalid";
constexpr std::string_view kNotMapped = "Client certificate is not mapped to an account";
constexpr std::string_view kBadGateway = "Bad Gateway: forwarder connection error";

constexpr std::array<VerdictInfo, static_cast<std::size_t>(Verdict::Count_)> kTable{{
    {Verdict::Allow, 200, 0, 0, "200_0_ok", "OK"},
    {Verdict::Deny403_4_SslRequired, 403, 4, 5, "403_4_ssl_required", "SSL required"},
    {Verdict::Deny403_5_Ssl128Required, 403, 5, 5, "403_5_ssl128_required",
     "SSL 128 required"},
    {Verdict::Deny403_7_NoCertificate, 403, 7, 5, "403_7_no_certificate",
     "Client certificate required"},
    {Verdict::Deny403_12_MapperDenied, 403, 12, 5, "403_12_mapper_denied",
     "Mapper denied access"},
    {Verdict::Deny403_13_Revoked, 403, 13, 0x80092010u, "403_13_revoked",
     "Client certificate revoked"},
    {Verdict::Deny403_13_RevocationUnknown, 403, 13, 0x80092013u, "403_13_revocation_unknown",
     "Client certificate revoked"},
    {Verdict::Deny403_16_UntrustedRoot, 403, 16, 0x800B0109u, "403_16_untrusted_root", kUntrusted},
    // CERT_E_WRONG_USAGE: the leaf's EKU, or that of a CA in its path, leaves out clientAuth.
    {Verdict::Deny403_16_WrongUsage, 403, 16, 0x800B0110u, "403_16_wrong_usage", kUntrusted},
    {Verdict::Deny403_16_Invalid, 403, 16, 0x80096004u, "403_16_invalid", kUntrusted},
    // Still 403.16 as on IIS, but titled as what it is: the certificate is fine, no account.
    {Verdict::Deny403_16_NoMapping, 403, 16, 1326, "403_16_no_mapping", kNotMapped},
    {Verdict::Deny403_17_Expired, 403, 17, 0x800B0101u, "403_17_expired",
     "Client certificate has expired or is not yet valid"},
    {Verdict::Deny401_1_BadCredentials, 401, 1, 1326, "401_1_bad_credentials", "Logon failed"},
    {Verdict::Deny401_2_NoMethod, 401, 2, 5, "401_2_no_method",
     "Logon failed due to server configuration"},
    // A logged-on user refused by an authorization rule (ERROR_ACCESS_DENIED).
    {Verdict::Deny401_3_AccessDenied, 401, 3, 5, "401_3_access_denied",
     "Unauthorized due to ACL on resource"},
    // Directory mapping (behaviour.md §3; decisions in docs/directory.md): several accounts
    // claim the certificate → 403.16 logon failure; directory unreachable → 500 with
    // ERROR_DS_SERVER_DOWN, directory error → ERROR_DS_OPERATIONS_ERROR; too many waiting → 503.
    {Verdict::Deny403_16_DirectoryAmbiguous, 403, 16, 1326, "403_16_directory_ambiguous",
     kNotMapped},
    {Verdict::Deny500_DirectoryUnavailable, 500, 0, 8250, "500_0_directory_unavailable",
     "Internal Server Error"},
    {Verdict::Deny500_DirectoryFailed, 500, 0, 8224, "500_0_directory_failed",
     "Internal Server Error"},
    {Verdict::Deny503_DirectoryBusy, 503, 0, 0, "503_0_directory_busy", "Service Unavailable"},
    // soft_fail (behaviour.md §2, decision): served, and the log line keeps
    // CRYPT_E_REVOCATION_OFFLINE so the doubt is visible where 403.13 would have been.
    {Verdict::Allow200_RevocationUnknown, 200, 0, 0x80092013u, "200_0_revocation_unknown", "OK"},
    {Verdict::Http400_BadRequest, 400, 0, 0, "400_0_bad_request", "Bad Request"},
    {Verdict::Http403_14_ListingDenied, 403, 14, 0, "403_14_listing_denied",
     "Directory listing denied"},
    // ERROR_FILE_NOT_FOUND, as IIS's static file handler logs a missing file.
    {Verdict::Http404_NotFound, 404, 0, 2, "404_0_not_found",
     "The resource you are looking for has been removed, had its name changed, or is "
     "temporarily unavailable"},
    {Verdict::Http404_8_HiddenSegment, 404, 8, 0, "404_8_hidden_segment",
     "The request filtering module is configured to deny a path in the URL that contains a "
     "hidden segment"},
    // ERROR_INVALID_FUNCTION, as IIS's static file handler logs a verb it does not serve.
    {Verdict::Http405_MethodNotAllowed, 405, 0, 1, "405_0_method_not_allowed",
     "The page you are looking for cannot be displayed because an invalid method (HTTP verb) "
     "is being used"},
    {Verdict::Http408_RequestTimeout, 408, 0, 0, "408_0_request_timeout", "Request Timeout"},
    {Verdict::Http413_BodyTooLarge, 413, 0, 0, "413_0_body_too_large", "Request Entity Too Large"},
    {Verdict::Http414_UrlTooLong, 414, 0, 0, "414_0_url_too_long", "URI Too Long"},
    {Verdict::Http416_RangeNotSatisfiable, 416, 0, 0, "416_0_range_not_satisfiable",
     "Range Not Satisfiable"},
    {Verdict::Http421_MisdirectedRequest, 421, 0, 0, "421_0_misdirected_request",
     "This connection was made for another site"},
    {Verdict::Http431_HeadersTooLarge, 431, 0, 0, "431_0_headers_too_large",
     "Request Header Fields Too Large"},
    {Verdict::Http500_FileUnreadable, 500, 0, 0, "500_0_file_unreadable", "Internal Server Error"},
    {Verdict::Http501_TransferCoding, 501, 0, 0, "501_0_transfer_coding", "Not Implemented"},
    // ARR's forwarder errors: ERROR_WINHTTP_CANNOT_CONNECT, ERROR_WINHTTP_TIMEOUT,
    // ERROR_WINHTTP_INVALID_SERVER_RESPONSE.
    {Verdict::Http502_3_BackendRefused, 502, 3, 12029, "502_3_backend_refused", kBadGateway},
    {Verdict::Http502_3_BackendConnectTimeout, 502, 3, 12002, "502_3_backend_connect_timeout",
     kBadGateway},
    {Verdict::Http502_3_BackendInvalidAnswer, 502, 3, 12152, "502_3_backend_invalid_answer",
     kBadGateway},
    {Verdict::Http503_PasswordChecksBusy, 503, 0, 0, "503_0_password_checks_busy",
     "Service Unavailable"},
    {Verdict::Http504_BackendTimeout, 504, 0, 12002, "504_0_backend_timeout",
     "The backend did not answer in time"},
    // A failed logon, as 401.1 is for a wrong password (ERROR_LOGON_FAILURE); the reason says
    // whether the nonce was replayed, expired, unknown or another site's.
    {Verdict::Token401_1_NonceRefused, 401, 1, 1326, "401_1_token_nonce_refused", "Logon failed"},
    {Verdict::Token401_1_BadSignature, 401, 1, 1326, "401_1_token_bad_signature", "Logon failed"},
    {Verdict::Http503_StateUnavailable, 503, 0, 0, "503_0_state_unavailable", "Service Unavailable"},
    // docs/on-demand.md: the redirect to the step-up binding (401 with Location for a method a
    // 303 would turn into GET). IIS has no such answer: win32 0.
    {Verdict::Http303_StepUp, 303, 0, 0, "303_0_step_up", "See Other: present a client certificate at the step-up address"},
    {Verdict::Http401_StepUp, 401, 0, 0, "401_0_step_up", "Unauthorized: present a client certificate at the step-up address"},
}};

constexpr bool table_is_in_enum_order() {
  for (std::size_t i = 0; i < kTable.size(); ++i)
    if (static_cast<std::size_t>(kTable[i].verdict) != i) return false;
  return true;
}
static_assert(table_is_in_enum_order(), "verdict table rows must follow enum Verdict order");

}  // namespace

const VerdictInfo& info(Verdict v) { return kTable[static_cast<std::size_t>(v)]; }

}  // namespace certgate::auth
