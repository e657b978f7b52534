#include "auth/directory.hpp"

#include "auth/policy.hpp"
#include "auth/wildcard.hpp"

#include <charconv>

namespace certgate::auth {
namespace {

// Windows writes the serial number of <SR> as the integer's bytes in reverse order (the
// little-endian CERT_INFO.SerialNumber blob), two hex digits a byte.
std::string reversed_serial(std::string_view serial_hex) {
  std::string hex(serial_hex);
  if (hex.size() % 2) hex.insert(hex.begin(), '0');
  std::string out;
  out.reserve(hex.size());
  for (std::size_t i = hex.size(); i >= 2; i -= 2) out.append(hex, i - 2, 2);
  return fold(out);
}

std::string filter_for(const DirectoryPolicy& policy, const std::vector<DirectoryClaim>& claims) {
  std::string any = "(|";
  for (const auto& c : claims) any += "(" + c.attribute + "=" + ldap_escape(c.value) + ")";
  any += ")";
  return "(&" + policy.account_filter + any + ")";
}

std::string user_name(const DirectoryEntry& e, const DirectoryNaming& naming) {
  return naming.domain.empty() ? e.user : naming.domain + "\\" + e.user;
}

}  // namespace

bool is_strong(DirectoryForm f) {
  return f == DirectoryForm::Sid || f == DirectoryForm::IssuerSerial || f == DirectoryForm::Ski ||
         f == DirectoryForm::Sha1PublicKey;
}

std::string_view to_string(DirectoryForm f) {
  switch (f) {
    case DirectoryForm::Sid: return "SID";
    case DirectoryForm::IssuerSerial: return "issuer+serial (X509:<I><SR>)";
    case DirectoryForm::Ski: return "subject key identifier (X509:<SKI>)";
    case DirectoryForm::Sha1PublicKey: return "SHA-1 hash (X509:<SHA1-PUKEY>)";
    case DirectoryForm::IssuerSubject: return "issuer+subject (X509:<I><S>)";
    case DirectoryForm::Subject: return "subject (X509:<S>)";
    case DirectoryForm::Rfc822: return "e-mail (X509:<RFC822>)";
    case DirectoryForm::Upn: return "UPN (userPrincipalName)";
  }
  return "?";
}

std::vector<DirectoryClaim> alt_security_identities(const CertFacts& cert) {
  const std::string attr = "altSecurityIdentities";
  std::vector<DirectoryClaim> out;
  if (!cert.issuer_x500.empty() && !cert.serial_hex.empty())
    out.push_back({DirectoryForm::IssuerSerial, attr,
                   "X509:<I>" + cert.issuer_x500 + "<SR>" + reversed_serial(cert.serial_hex)});
  if (!cert.ski_hex.empty())
    out.push_back({DirectoryForm::Ski, attr, "X509:<SKI>" + fold(cert.ski_hex)});
  if (!cert.sha1_thumbprint.empty())
    out.push_back({DirectoryForm::Sha1PublicKey, attr,
                   "X509:<SHA1-PUKEY>" + fold(cert.sha1_thumbprint)});
  if (!cert.issuer_x500.empty() && !cert.subject_x500.empty())
    out.push_back({DirectoryForm::IssuerSubject, attr,
                   "X509:<I>" + cert.issuer_x500 + "<S>" + cert.subject_x500});
  if (!cert.subject_x500.empty())
    out.push_back({DirectoryForm::Subject, attr, "X509:<S>" + cert.subject_x500});
  for (const auto& e : cert.emails) out.push_back({DirectoryForm::Rfc822, attr, "X509:<RFC822>" + e});
  return out;
}

std::vector<DirectoryTier> directory_plan(const CertFacts& cert, const DirectoryPolicy& policy) {
  DirectoryTier strong{true, {}, ""}, weak{false, {}, ""};
  if (!policy.sid_attribute.empty())
    for (const auto& s : cert.sids)
      if (auto bin = sid_to_binary(s); !bin.empty())
        strong.claims.push_back({DirectoryForm::Sid, policy.sid_attribute, bin});
  for (auto c : alt_security_identities(cert)) {
    c.attribute = policy.mapping_attribute;
    (is_strong(c.form) ? strong : weak).claims.push_back(std::move(c));
  }
  if (!policy.upn_attribute.empty())
    for (const auto& u : cert.upns) weak.claims.push_back({DirectoryForm::Upn, policy.upn_attribute, u});
  std::vector<DirectoryTier> plan;
  for (DirectoryTier* t : {&strong, &weak}) {
    if (t->claims.empty() || (!t->strong && !policy.allow_weak)) continue;
    t->filter = filter_for(policy, t->claims);
    plan.push_back(std::move(*t));
  }
  return plan;
}

std::string ldap_escape(std::string_view value) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20 || c >= 0x7f) {
      out += '\\';
      out += digits[c >> 4];
      out += digits[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string sid_to_binary(std::string_view sid) {
  if (sid.size() < 4 || (sid.substr(0, 2) != "S-" && sid.substr(0, 2) != "s-")) return "";
  std::vector<std::uint64_t> parts;
  std::size_t pos = 2;
  while (pos <= sid.size()) {
    std::size_t end = sid.find('-', pos);
    if (end == std::string_view::npos) end = sid.size();
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(sid.data() + pos, sid.data() + end, v);
    if (ec != std::errc() || p != sid.data() + end || end == pos) return "";
    parts.push_back(v);
    pos = end + 1;
  }
  // revision, authority, 1..15 sub-authorities of 32 bits
  if (parts.size() < 3 || parts.size() > 17 || parts[0] != 1 || parts[1] >= (1ULL << 48)) return "";
  std::string out;
  out += static_cast<char>(parts[0]);
  out += static_cast<char>(parts.size() - 2);
  for (int shift = 40; shift >= 0; shift -= 8) out += static_cast<char>((parts[1] >> shift) & 0xff);
  for (std::size_t i = 2; i < parts.size(); ++i) {
    if (parts[i] > 0xffffffffULL) return "";
    for (int shift = 0; shift < 32; shift += 8) out += static_cast<char>((parts[i] >> shift) & 0xff);
  }
  return out;
}

std::string sid_from_binary(std::string_view b) {
  auto u = [&](std::size_t i) { return static_cast<std::uint64_t>(static_cast<unsigned char>(b[i])); };
  if (b.size() < 8) return "";
  const std::size_t n = u(1);
  if (b.size() != 8 + 4 * n) return "";
  std::uint64_t authority = 0;
  for (std::size_t i = 2; i < 8; ++i) authority = (authority << 8) | u(i);
  std::string out = "S-" + std::to_string(u(0)) + "-" + std::to_string(authority);
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t o = 8 + 4 * k;
    out += "-" + std::to_string(u(o) | (u(o + 1) << 8) | (u(o + 2) << 16) | (u(o + 3) << 24));
  }
  return out;
}

Outcome judge_directory(const CertFacts& cert, const DirectoryAnswer& a,
                        const DirectoryNaming& naming) {
  const std::string who = "certificate '" + cert.subject_dn + "'";
  using S = DirectoryAnswer::Status;
  switch (a.status) {
    case S::Busy:
      return Outcome{.verdict = Verdict::Deny503_DirectoryBusy,
                     .reason = "too many directory lookups are waiting; try again shortly"};
    case S::Unavailable:
      return Outcome{.verdict = Verdict::Deny500_DirectoryUnavailable,
                     .reason = "the account directory " + a.server + " could not be reached to "
                               "map " + who + ": " + a.error};
    case S::Failed:
      return Outcome{.verdict = Verdict::Deny500_DirectoryFailed,
                     .reason = "the account directory " + a.server + " refused the lookup for " +
                               who + ": " + a.error};
    case S::Found: break;
  }
  if (a.entries.empty())
    // spec: behaviour.md §1 step 7 "nothing matches → 403.16 with win32 1326"
    return Outcome{.verdict = Verdict::Deny403_16_NoMapping,
                   .reason = who + " is valid, but no account in the directory is bound to it " +
                             (a.filter.empty() ? std::string("(the certificate offers no usable "
                                                             "identity for the enabled forms)")
                                               : "(searched " + a.filter + ")")};
  if (a.entries.size() > 1) {
    std::string dns;
    for (const auto& e : a.entries) dns += (dns.empty() ? "" : "; ") + e.dn;
    // spec: behaviour.md §3 "Exactly one account must match."
    return Outcome{.verdict = Verdict::Deny403_16_DirectoryAmbiguous,
                   .reason = std::to_string(a.entries.size()) + " accounts claim " + who + ": " +
                             dns + "; a certificate must map to exactly one account"};
  }
  const DirectoryEntry& e = a.entries.front();
  if (!a.strong && !cert.sids.empty() && !e.sids.empty()) {
    // KB5014754: an implicit (weak) match must not land on an account whose SID the
    // certificate contradicts; that is the forged-UPN attack strong mapping exists to stop.
    bool same = false;
    for (const auto& s : cert.sids) for (const auto& mine : e.sids) same |= sid_to_binary(s) == mine;
    if (!same)
      return Outcome{.verdict = Verdict::Deny403_16_NoMapping,
                     .reason = who + " names SID " + cert.sids.front() + ", but the account " +
                               e.dn + " it weakly matches has SID " + sid_from_binary(e.sids.front())};
  }
  if (e.user.empty())
    return Outcome{.verdict = Verdict::Deny403_16_NoMapping,
                   .reason = "the account " + e.dn + " bound to " + who +
                             " has no user name attribute"};
  return Outcome{.verdict = Verdict::Allow, .reason = "", .user = user_name(e, naming),
                 .auth_method = "Certificate",
                 .rule = std::string("directory ") + (a.strong ? "strong" : "weak") + " mapping " + e.dn,
                 .groups = e.groups};
}

DirectoryReuse reuse_of(const Outcome& o) {
  switch (o.verdict) {
    case Verdict::Allow: return DirectoryReuse::Found;
    case Verdict::Deny403_16_NoMapping:
    case Verdict::Deny403_16_DirectoryAmbiguous: return DirectoryReuse::NotFound;
    default: return DirectoryReuse::Never;
  }
}

bool defers_to_directory(const SiteAuth& site, const Outcome& mapped) {
  return site.directory_enabled && mapped.verdict == Verdict::Deny403_16_NoMapping;
}

}  // namespace certgate::auth
