#pragma once
// Directory mapping (IIS clientCertificateMappingAuthentication, the Active Directory mapper):
// which LDAP searches a certificate leads to, and what their answers mean. spec: behaviour.md
// §3 "directory mapping". The searches themselves run in directory/ (libldap, worker threads);
// everything that decides is here, so it is tested with tables.
#include "auth/cert_facts.hpp"
#include "auth/verdict.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::auth {

// The certificate-to-account bindings Windows knows (KB5014754), strongest first. The order of
// this enum is the order of the lookups.
enum class DirectoryForm : std::uint8_t {
  Sid,            // SID extension 1.3.6.1.4.1.311.25.2 or SAN URI tag:microsoft.com,2022-09-14:sid:
  IssuerSerial,   // X509:<I>issuer<SR>serial bytes reversed          strong
  Ski,            // X509:<SKI>subject key identifier                 strong
  Sha1PublicKey,  // X509:<SHA1-PUKEY>certificate SHA-1 thumbprint     strong
  IssuerSubject,  // X509:<I>issuer<S>subject                         weak
  Subject,        // X509:<S>subject                                  weak
  Rfc822,         // X509:<RFC822>email                               weak
  Upn,            // SAN otherName UPN = the account's userPrincipalName (implicit mapping), weak
};
bool is_strong(DirectoryForm f);
std::string_view to_string(DirectoryForm f);

// The LDAP side of [sites.directory_mapping] that decides what is searched for.
struct DirectoryPolicy {
  std::string account_filter = "(objectClass=*)";        // ANDed with the mapping clause
  std::string mapping_attribute = "altSecurityIdentities";
  std::string sid_attribute = "objectSid";                // "" = the directory has no SIDs
  std::string upn_attribute = "userPrincipalName";
  bool allow_weak = false;
};

// One thing the certificate claims, as an LDAP assertion on one attribute.
struct DirectoryClaim {
  DirectoryForm form;
  std::string attribute;
  std::string value;  // the attribute value: "X509:<SKI>ab12...", a UPN, or SID bytes
};

// Every altSecurityIdentities string this certificate can be bound with, strongest first
// (`certgate map ad-string`). Each is exactly what an administrator pastes into the directory.
std::vector<DirectoryClaim> alt_security_identities(const CertFacts& cert);

// The searches to run, in order: strong claims first, then (allow_weak) weak ones. The shell
// runs them one by one and stops at the first tier that finds any account.
struct DirectoryTier {
  bool strong = true;
  std::vector<DirectoryClaim> claims;
  std::string filter;  // (&account_filter(|(attr=escaped value)...))
};
std::vector<DirectoryTier> directory_plan(const CertFacts& cert, const DirectoryPolicy& policy);

// RFC 4515 §3 escaping of an assertion value: `*`, `(`, `)`, `\`, NUL and bytes outside
// printable ASCII become \XX, so no certificate content can change a filter's structure.
std::string ldap_escape(std::string_view value);

// "S-1-5-21-1004336348-1177238915-682003330-1105" → the 8 + 4n bytes of a binary SID, as the
// directory stores objectSid; "" when the text is no SID.
std::string sid_to_binary(std::string_view sid);
std::string sid_from_binary(std::string_view bytes);

// One account a search returned.
struct DirectoryEntry {
  std::string dn;
  std::string user;                 // value of user_attribute ("" when absent)
  std::vector<std::string> sids;    // binary objectSid values
  std::vector<std::string> groups;  // group names (memberOf CNs or group-search names)
};

// What the shell learned from the directory for one certificate.
struct DirectoryAnswer {
  enum class Status : std::uint8_t {
    Found,        // the searches ran; `entries` are the accounts of the first tier that had any
    Unavailable,  // no directory server could be reached, or it did not answer in time
    Failed,       // a server answered with an error (bad bind credentials, bad base DN...)
    Busy,         // too many lookups waiting; not asked
  };
  Status status = Status::Found;
  bool strong = true;   // the tier `entries` came from
  std::string filter;   // the filter of that tier (for explain and reasons)
  std::string server;   // which directory answered or failed ("ldap://127.0.0.1:3890")
  std::string error;    // the server's or library's words
  std::vector<DirectoryEntry> entries;
};

struct DirectoryNaming {
  std::string domain;  // NetBIOS domain: user becomes "DOMAIN\user", as IIS logs it
};

// The directory mapper's decision: one account → Allow as that user with its groups; none →
// 403.16 (1326); several → 403.16, naming them; a weak match whose account carries another SID
// than the certificate → 403.16; directory down → 500 (8250), error → 500 (8224), busy → 503.
Outcome judge_directory(const CertFacts& cert, const DirectoryAnswer& answer,
                        const DirectoryNaming& naming);

// How long the directory mapper's decision may be reused: an account found (cache_seconds),
// "no account" or "several" (negative_cache_seconds), or not at all (outage, error, busy).
enum class DirectoryReuse : std::uint8_t { Found, NotFound, Never };
DirectoryReuse reuse_of(const Outcome& decided);

// Whether the directory must be asked: the site maps through it and no one-to-one entry
// (tried first, as IIS does) claimed the certificate.
bool defers_to_directory(const struct SiteAuth& site, const Outcome& mapped);

}  // namespace certgate::auth
