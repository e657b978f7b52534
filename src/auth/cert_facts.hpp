#pragma once
// What the mapping rules may look at in a client certificate, as plain values. Filled by
// pki/cert_facts.cpp (the only code that reads certificate fields), judged here.
#include <string>
#include <string_view>
#include <vector>

namespace certgate::auth {

// One attribute of a distinguished name. `label` uses the Windows names of IIS rules:
// CN O OU L S C E, plus DC GN SN T I SERIALNUMBER; other attributes keep their OID text.
struct NameAttr {
  std::string label;
  std::string value;
};

struct CertFacts {
  std::string der_sha256;   // lower-case hex of SHA-256 over the certificate DER
  std::string spki_sha256;  // lower-case hex of SHA-256 over the SubjectPublicKeyInfo DER
  std::string sha1_thumbprint;  // upper-case hex, as Windows shows it
  std::string serial_hex;   // upper-case hex, no leading zeros
  std::string ski_hex;      // lower-case hex of the subjectKeyIdentifier ("" when absent)
  std::string subject_dn;   // "CN=alice, OU=Staff, O=Corp" (most specific first)
  std::string issuer_dn;
  std::vector<NameAttr> subject;  // every attribute of every RDN (multi-valued RDNs flattened)
  std::vector<NameAttr> issuer;
  std::vector<std::string> upns;    // subjectAltName otherName 1.3.6.1.4.1.311.20.2.3
  std::vector<std::string> emails;  // subjectAltName rfc822Name
  // Distinguished names as Windows writes them in altSecurityIdentities: encoding order (root
  // side first), "," between RDNs, "+" inside a multi-valued RDN: "DC=com,DC=corp,CN=Corp CA".
  std::string subject_x500;
  std::string issuer_x500;
  // Security identifiers the certificate names: the szOID_NTDS_CA_SECURITY_EXT extension
  // (1.3.6.1.4.1.311.25.2) and SAN URIs "tag:microsoft.com,2022-09-14:sid:S-1-...".
  std::vector<std::string> sids;
};

// "ST" → "S", "emailAddress" → "E", "title" → "T", ...; "" when the word is no known label.
std::string canonical_label(std::string_view word);

}  // namespace certgate::auth
