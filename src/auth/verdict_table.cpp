#include "auth/verdict.hpp"

#include <array>

namespace certgate::auth {
namespace {

// spec: behaviour.md §5 (status table); titles follow IIS's own error pages.
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
    {Verdict::Deny403_16_UntrustedRoot, 403, 16, 0x800B0109u, "403_16_untrusted_root",
     "Client certificate is untrusted or invalid"},
    {Verdict::Deny403_16_WrongUsage, 403, 16, 0x800B0110u, "403_16_wrong_usage",
     "Client certificate is untrusted or invalid"},
    {Verdict::Deny403_16_Invalid, 403, 16, 0x80096004u, "403_16_invalid",
     "Client certificate is untrusted or invalid"},
    {Verdict::Deny403_16_NoMapping, 403, 16, 1326, "403_16_no_mapping",
     "Client certificate is untrusted or invalid"},
    {Verdict::Deny403_17_Expired, 403, 17, 0x800B0101u, "403_17_expired",
     "Client certificate has expired or is not yet valid"},
    {Verdict::Deny401_1_BadCredentials, 401, 1, 1326, "401_1_bad_credentials", "Logon failed"},
    {Verdict::Deny401_2_NoMethod, 401, 2, 5, "401_2_no_method",
     "Logon failed due to server configuration"},
    {Verdict::Deny403_0_Forbidden, 403, 0, 5, "403_0_forbidden", "Forbidden"},
    // Directory mapping (behaviour.md §3; decisions in docs/directory.md): several accounts
    // claim the certificate → 403.16 logon failure; directory unreachable → 500 with
    // ERROR_DS_SERVER_DOWN, directory error → ERROR_DS_OPERATIONS_ERROR; too many waiting → 503.
    {Verdict::Deny403_16_DirectoryAmbiguous, 403, 16, 1326, "403_16_directory_ambiguous",
     "Client certificate is untrusted or invalid"},
    {Verdict::Deny500_DirectoryUnavailable, 500, 0, 8250, "500_0_directory_unavailable",
     "Internal Server Error: the account directory could not be reached"},
    {Verdict::Deny500_DirectoryFailed, 500, 0, 8224, "500_0_directory_failed",
     "Internal Server Error: the account directory refused the lookup"},
    {Verdict::Deny503_DirectoryBusy, 503, 0, 0, "503_0_directory_busy",
     "Service Unavailable: too many directory lookups are waiting"},
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
