#pragma once
// The catalogue of every answer certgate gives: the authentication core's decisions and the
// HTTP shell's own answers (bad request, not found, backend down...), one row each with what
// the W3C log's sc-status, sc-substatus and sc-win32-status hold and the error page's title.
// spec: behaviour.md §5; docs/status-codes.md lists every row. Enumerators carry their status
// code in the name so that `grep -rn 403_16 src` finds every place a 403.16 is chosen.
#include <cstdint>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::auth {

enum class Verdict : std::uint8_t {
  Allow,
  Deny403_4_SslRequired,
  Deny403_5_Ssl128Required,
  Deny403_7_NoCertificate,
  Deny403_12_MapperDenied,
  Deny403_13_Revoked,
  Deny403_13_RevocationUnknown,
  Deny403_16_UntrustedRoot,
  Deny403_16_WrongUsage,
  Deny403_16_Invalid,
  Deny403_16_NoMapping,
  Deny403_17_Expired,
  Deny401_1_BadCredentials,
  Deny401_2_NoMethod,
  Deny401_3_AccessDenied,
  Deny403_16_DirectoryAmbiguous,
  Deny500_DirectoryUnavailable,
  Deny500_DirectoryFailed,
  Deny503_DirectoryBusy,
  // Accepted although the revocation status could not be obtained (soft_fail).
  Allow200_RevocationUnknown,
  // The HTTP shell's answers (http/): the request itself, the file system, the backend.
  Http400_BadRequest,
  Http403_14_ListingDenied,
  Http404_NotFound,
  Http404_8_HiddenSegment,
  Http405_MethodNotAllowed,
  Http408_RequestTimeout,
  Http413_BodyTooLarge,
  Http414_UrlTooLong,
  Http416_RangeNotSatisfiable,
  Http421_MisdirectedRequest,
  Http431_HeadersTooLarge,
  Http500_FileUnreadable,
  Http501_TransferCoding,
  Http502_3_BackendRefused,
  Http502_3_BackendConnectTimeout,
  Http502_3_BackendInvalidAnswer,
  Http503_PasswordChecksBusy,
  Http504_BackendTimeout,
  // Token login (docs/token-login.md): a challenge answer whose nonce or signature is refused,
  // and the single-use store ([server.state]) unable to answer.
  Token401_1_NonceRefused,
  Token401_1_BadSignature,
  Http503_StateUnavailable,
  // On demand, a client that cannot be asked after the handshake: sent to [sites.step_up].
  Http303_StepUp,
  Http401_StepUp,
  Count_
};

struct VerdictInfo {
  Verdict verdict;
  int status;
  int substatus;
  std::uint32_t win32;
  std::string_view token;  // stable machine name, e.g. "403_16_untrusted_root"
  std::string_view title;  // IIS-style title shown on the error page
};

// Row of the catalogue for `v`. Never fails: every enumerator has a row (static_assert'ed).
const VerdictInfo& info(Verdict v);

// What the core decided about one request, and why.
struct Outcome {
  Verdict verdict = Verdict::Allow;
  std::string reason;  // precise words for the error page and `explain`
  std::string user;    // authenticated user name; empty = anonymous
  std::string auth_method;  // "Certificate", "Basic", "Anonymous"...
  std::string rule;         // the mapping or rule that decided ("" when none)
  std::vector<std::string> groups;  // groups the mapper found (directory mapping)
  bool challenge = false;   // a 401 that should carry WWW-Authenticate: Basic
  // This request's decision validated the presented certificate (chain fault none) and, where the
  // site maps certificates, mapped it: the only case in which it may be forwarded to a backend.
  bool certificate = false;
  std::source_location where = std::source_location::current();

  bool allowed() const { return row().status == 200; }
  const VerdictInfo& row() const { return info(verdict); }
};

}  // namespace certgate::auth
