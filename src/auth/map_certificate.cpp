#include "auth/decide.hpp"

namespace certgate::auth {

// spec: behaviour.md §3: one-to-one is tried before many-to-one; the first enabled matching
// many-to-one mapping decides.
Outcome map_certificate(const SiteAuth& site, const CertFacts& cert) {
  if (site.one_to_one_enabled)
    if (const OneToOneEntry* e = site.one_to_one.find(cert))
      return Outcome{.verdict = Verdict::Allow, .reason = "", .user = e->user,
                     .auth_method = "Certificate",
                     .rule = "one-to-one " + e->origin + " (match = " +
                             std::string(to_string(e->key)) + ")"};
  if (site.many_to_one_enabled) {
    if (const ManyToOneMapping* m = site.many_to_one.find(cert)) {
      if (m->allow)
        return Outcome{.verdict = Verdict::Allow, .reason = "", .user = m->user,
                       .auth_method = "Certificate", .rule = "many-to-one \"" + m->name + "\""};
      // spec: behaviour.md §1 step 7 "403.12 mapper denied access"
      return Outcome{.verdict = Verdict::Deny403_12_MapperDenied,
                     .reason = "many-to-one mapping \"" + m->name +
                               "\" denies access to certificate '" + cert.subject_dn + "'",
                     .rule = "many-to-one \"" + m->name + "\""};
    }
  }
  // spec: behaviour.md §1 step 7 "nothing matches → 403.16 with win32 1326"
  return Outcome{.verdict = Verdict::Deny403_16_NoMapping,
                 .reason = "certificate '" + cert.subject_dn +
                           "' is valid, but no one-to-one or many-to-one mapping of this site "
                           "matches it"};
}

}  // namespace certgate::auth
