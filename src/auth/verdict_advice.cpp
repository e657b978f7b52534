#include "auth/verdict_advice.hpp"

#include <array>

namespace certgate::auth {
namespace {

using V = Verdict;
using sv = std::string_view;

constexpr sv kAskAdmin =
    "If the problem persists, contact the site's administrator and give them the request id "
    "shown on this page.";
constexpr sv kRestart =
    "Close every window of your browser and start it again: it then asks again which "
    "certificate to send (it remembers a dismissed or chosen certificate until restarted).";

constexpr std::array<sv, 2> k4034Causes{
    "The address starts with http:// but this page is only served over https://.",
    "A link or bookmark points to the unencrypted address."};
constexpr std::array<sv, 2> k4034Try{
    "Type the address again, starting with https://.",
    "If you followed a link, tell the owner of the page that the link should use https://."};

constexpr std::array<sv, 1> k4035Causes{
    "Your browser, or a device between you and the server, agreed on encryption weaker than 128 "
    "bits."};
constexpr std::array<sv, 2> k4035Try{"Update your browser to a current version.", kAskAdmin};

constexpr std::array<sv, 4> k4037Causes{
    "No certificate from an issuer this site accepts is installed in your browser or system.",
    "Your certificate has expired or is not valid yet: browsers silently leave such "
    "certificates out of the list they offer.",
    "The certification authority that issued your certificate is not installed, so the "
    "browser cannot tell that your certificate comes from an issuer this site accepts.",
    "The certificate prompt was dismissed or cancelled, and the browser remembers that."};
constexpr std::array<sv, 5> k4037Try{
    "Check that a certificate from one of the issuers this site accepts (listed on this page) is installed.",
    "Check that your certificate has not expired (its \"valid to\" date).",
    "Check that the certificate of the authority that issued yours is installed too.",
    kRestart, kAskAdmin};

constexpr std::array<sv, 1> k40312Causes{
    "A certificate mapping rule of this site refuses your certificate."};
constexpr std::array<sv, 2> k40312Try{
    "If you have another certificate for this site, restart the browser and choose it.", kAskAdmin};

constexpr std::array<sv, 1> k40313RevokedCauses{
    "The authority that issued your certificate has revoked it (it was reported lost, was "
    "replaced, or your access was withdrawn)."};
constexpr std::array<sv, 3> k40313RevokedTry{
    "If you have a newer certificate, restart the browser and choose it.",
    "Ask whoever issued your certificate (usually your IT department) for a new one.", kAskAdmin};
constexpr std::array<sv, 1> k40313UnknownCauses{
    "The server could not reach the service of your certificate's issuer that says whether a "
    "certificate has been revoked."};
constexpr std::array<sv, 2> k40313UnknownTry{"Try again in a few minutes.", kAskAdmin};

constexpr std::array<sv, 3> k40316Causes{
    "Your certificate was issued by an authority this site does not accept.",
    "Your certificate is not meant for logging on to web sites (client authentication).",
    "Your certificate is damaged or was not issued properly."};
constexpr std::array<sv, 3> k40316Try{
    "Choose another certificate, one issued for this site (restart the browser to be asked "
    "again).",
    "Ask your IT department which certificate to use for this site.", kAskAdmin};

constexpr std::array<sv, 2> k40316MapCauses{
    "Your certificate has not been registered for an account on this site yet.",
    "You have a new or renewed certificate, and only your old one is registered."};
constexpr std::array<sv, 2> k40316MapTry{
    "Ask the site's administrator to map your certificate to your account; give them the "
    "request id shown on this page.",
    "If you have several certificates, restart the browser and choose another one."};

constexpr std::array<sv, 1> k40316AmbiguousCauses{
    "Your certificate is registered for more than one account, so the server cannot tell which "
    "one is yours."};
constexpr std::array<sv, 1> k40316AmbiguousTry{kAskAdmin};

constexpr std::array<sv, 2> k40317Causes{
    "The certificate's validity period has ended.",
    "The certificate is not valid yet (its validity starts later)."};
constexpr std::array<sv, 3> k40317Try{
    "Renew the certificate, or ask your IT department for a new one.",
    "If you already have a current certificate, restart the browser and choose it.", kAskAdmin};

constexpr std::array<sv, 1> k4011Causes{"The user name or the password is not correct."};
constexpr std::array<sv, 2> k4011Try{"Check the user name and password, and try again.", kAskAdmin};
constexpr std::array<sv, 1> k4012Causes{
    "The site accepts no way of logging on that your browser offered."};
constexpr std::array<sv, 1> k4012Try{kAskAdmin};
constexpr std::array<sv, 1> k4013Causes{"Your account is not allowed to see this page."};
constexpr std::array<sv, 2> k4013Try{
    "If you have another account for this site, log on with it.",
    "Ask the site's administrator for access; give them the request id shown on this page."};

constexpr std::array<sv, 1> k421Causes{
    "Your browser reused a connection it had opened for another name served by this server."};
constexpr std::array<sv, 2> k421Try{
    "Reload the page.", "If that does not help, restart the browser and open the address again."};

constexpr std::array<sv, 1> k413Causes{
    "The request (usually an upload) is larger than this server accepts."};
constexpr std::array<sv, 2> k413Try{"Send a smaller file or less data.", kAskAdmin};

constexpr std::array<sv, 1> k5023Causes{
    "The application behind this server is down, restarting or unreachable."};
constexpr std::array<sv, 2> k5023Try{"Try again in a few minutes.", kAskAdmin};
constexpr std::array<sv, 1> k504Causes{
    "The application behind this server is busy or stuck."};

constexpr std::array<sv, 0> kNone{};
constexpr std::array<sv, 1> kGeneralTry{kAskAdmin};

struct Row {
  V answer;
  Advice advice;
};

const std::array<Row, 20> kRows{{
    {V::Deny403_4_SslRequired, {"This page can only be viewed over a secure (https) connection.", k4034Causes, k4034Try}},
    {V::Deny403_5_Ssl128Required, {"This page needs a connection with strong (128-bit or better) encryption.", k4035Causes, k4035Try}},
    {V::Deny403_7_NoCertificate, {"This page needs a client certificate, and your browser did not send one.", k4037Causes, k4037Try}},
    {V::Deny403_12_MapperDenied, {"This site's certificate mapping does not let your certificate in.", k40312Causes, k40312Try}},
    {V::Deny403_13_Revoked, {"The certificate your browser sent has been revoked by its issuer.", k40313RevokedCauses, k40313RevokedTry}},
    {V::Deny403_13_RevocationUnknown, {"The server could not confirm that the certificate your browser sent has not been revoked.", k40313UnknownCauses, k40313UnknownTry}},
    {V::Deny403_16_UntrustedRoot, {"The server does not trust the certificate your browser sent.", k40316Causes, k40316Try}},
    {V::Deny403_16_WrongUsage, {"The certificate your browser sent is not meant for logging on to web sites.", k40316Causes, k40316Try}},
    {V::Deny403_16_Invalid, {"The certificate your browser sent is not valid.", k40316Causes, k40316Try}},
    {V::Deny403_16_NoMapping, {"Your certificate is valid, but it is not linked to an account on this site.", k40316MapCauses, k40316MapTry}},
    {V::Deny403_16_DirectoryAmbiguous, {"Your certificate is linked to more than one account, so you cannot be logged on.", k40316AmbiguousCauses, k40316AmbiguousTry}},
    {V::Deny403_17_Expired, {"The certificate your browser sent has expired or is not valid yet.", k40317Causes, k40317Try}},
    {V::Deny401_1_BadCredentials, {"You could not be logged on with the credentials you gave.", k4011Causes, k4011Try}},
    {V::Deny401_2_NoMethod, {"You could not be logged on: the site accepts no method your browser offered.", k4012Causes, k4012Try}},
    {V::Deny401_3_AccessDenied, {"You are logged on, but you are not allowed to see this page.", k4013Causes, k4013Try}},
    {V::Http421_MisdirectedRequest, {"This request reached the server over a connection made for another site.", k421Causes, k421Try}},
    {V::Http413_BodyTooLarge, {"The request is larger than this server accepts.", k413Causes, k413Try}},
    {V::Http502_3_BackendRefused, {"The server could not reach the application that serves this page.", k5023Causes, k5023Try}},
    {V::Http502_3_BackendConnectTimeout, {"The server could not reach the application that serves this page.", k5023Causes, k5023Try}},
    {V::Http504_BackendTimeout, {"The application that serves this page did not answer in time.", k504Causes, k5023Try}},
}};

const Advice kInvalidAnswer{"The application that serves this page gave an answer the server cannot pass on.", k5023Causes, k5023Try};
const Advice kGeneral{"The server could not serve this request.", kNone, kGeneralTry};

}  // namespace

const Advice& advice_for(Verdict answer) {
  if (answer == V::Http502_3_BackendInvalidAnswer) return kInvalidAnswer;
  for (const auto& r : kRows)
    if (r.answer == answer) return r.advice;
  return kGeneral;
}

std::string_view win32_name(std::uint32_t code) {
  switch (code) {
    case 1: return "ERROR_INVALID_FUNCTION";
    case 2: return "ERROR_FILE_NOT_FOUND";
    case 5: return "ERROR_ACCESS_DENIED";
    case 1326: return "ERROR_LOGON_FAILURE";
    case 8224: return "ERROR_DS_OPERATIONS_ERROR";
    case 8250: return "ERROR_DS_SERVER_DOWN";
    case 12002: return "ERROR_WINHTTP_TIMEOUT";
    case 12029: return "ERROR_WINHTTP_CANNOT_CONNECT";
    case 12152: return "ERROR_WINHTTP_INVALID_SERVER_RESPONSE";
    case 0x80092010u: return "CRYPT_E_REVOKED";
    case 0x80092013u: return "CRYPT_E_REVOCATION_OFFLINE";
    case 0x800B0101u: return "CERT_E_EXPIRED";
    case 0x800B0109u: return "CERT_E_UNTRUSTEDROOT";
    case 0x800B0110u: return "CERT_E_WRONG_USAGE";
    case 0x80096004u: return "TRUST_E_CERT_SIGNATURE";
  }
  return "";
}

}  // namespace certgate::auth
