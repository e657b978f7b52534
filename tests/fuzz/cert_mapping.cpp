// Certificate facts and mapping on arbitrary DER: whatever certificate a client presents (the
// handshake parses it, and mapping runs even before the chain is judged for `explain`), its
// facts are read, the one-to-one keys, many-to-one rules and directory searches computed.
// LDAP filters built from certificate content must keep their structure.
#include "auth/directory.hpp"
#include "auth/mapping.hpp"
#include "fuzz_util.hpp"
#include "pki/cert_facts.hpp"
#include "pki/openssl_ptr.hpp"
#include "pki/x509_text.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

using namespace certgate;

namespace {

const auth::ManyToOneTable& table() {
  static const auth::ManyToOneTable t = [] {
    auth::ManyToOneTable t;
    auto rule = [](auth::Field f, const char* label, const char* pattern, bool cs) {
      return auth::Rule{f, label, pattern, auth::Wildcard(pattern, cs)};
    };
    t.add({"staff", "", "staff", true, true,
           {rule(auth::Field::Subject, "OU", "Staff", false), rule(auth::Field::Issuer, "CN", "*CA*", true)}, "m0"});
    t.add({"deny", "", "", false, true, {rule(auth::Field::Subject, "CN", "*evil*", false)}, "m1"});
    t.add({"mail", "", "mail", true, true, {rule(auth::Field::Subject, "E", "*@corp.test", false)}, "m2"});
    t.add({"any", "", "anyone", true, true, {rule(auth::Field::Subject, "CN", "*", true)}, "m3"});
    t.seal();
    return t;
  }();
  return t;
}

// Parentheses outside escaped values balance: no certificate value opened or closed a clause.
bool balanced(const std::string& filter) {
  int depth = 0;
  for (char c : filter) {
    if (c == '(') ++depth;
    else if (c == ')' && --depth < 0) return false;
  }
  return depth == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const unsigned char* p = data;
  pki::X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(size)));
  ERR_clear_error();
  if (!cert) return 0;

  const auth::CertFacts facts = pki::cert_facts(cert.get());
  (void)pki::subject_text(cert.get());
  (void)pki::issuer_text(cert.get());
  (void)pki::serial_hex(cert.get());
  (void)pki::to_unix(X509_get0_notAfter(cert.get()));

  auth::OneToOneIndex index;
  for (auto key : {auth::OneToOneKey::Certificate, auth::OneToOneKey::PublicKey,
                   auth::OneToOneKey::IssuerSerial, auth::OneToOneKey::Ski, auth::OneToOneKey::Upn,
                   auth::OneToOneKey::Email}) {
    for (const auto& v : auth::one_to_one_values(key, facts)) {
      if (v.empty()) continue;
      // What the certificate yields is what an administrator would write for it.
      (void)auth::normalize_one_to_one_value(key, v);
      (void)index.add({"u", key, v, true, std::string(auth::to_string(key))});
    }
  }
  if (index.size() > 0) FUZZ_CHECK(index.find(facts) != nullptr);

  std::vector<auth::MappingTrace> trace;
  const auto* found = table().find(facts);
  FUZZ_CHECK(found == table().find_traced(facts, trace));

  for (const auto& claim : auth::alt_security_identities(facts)) (void)claim;
  for (bool weak : {false, true}) {
    auth::DirectoryPolicy policy;
    policy.allow_weak = weak;
    for (const auto& tier : auth::directory_plan(facts, policy)) FUZZ_CHECK(balanced(tier.filter));
  }
  for (const auto& sid : facts.sids) (void)auth::sid_from_binary(auth::sid_to_binary(sid));
  return 0;
}
