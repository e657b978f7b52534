#pragma once
// Plain facts about a request, gathered by the shell (tls/, pki/, http/) and judged by decide().
// No OpenSSL or socket type appears here, so the core is tested with literal tables.
#include "auth/cert_facts.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace certgate::auth {

// Why a certificate chain is not acceptable. pki/chain_verify.cpp is the one place that
// turns OpenSSL's X509_V_ERR_* codes into these.
enum class ChainFault : std::uint8_t {
  None,
  Malformed,          // bytes are not a certificate
  UntrustedRoot,      // no path to one of this site's trusted issuers
  BadSignature,       // a signature in the path does not verify
  WeakCrypto,         // a key or signature digest below the site's minimum (min_rsa_bits, allow_sha1)
  WrongUsage,         // EKU lacks clientAuth, or keyUsage lacks digitalSignature
  Constraint,         // basicConstraints, pathLen, name constraints, critical extension, policy
  Expired,            // a certificate in the path is past notAfter
  NotYetValid,        // a certificate in the path is before notBefore
  Revoked,            // listed on a CRL that was checked
  RevocationUnknown,  // no usable CRL (missing, expired, bad signature) in hard-fail mode
};

std::string_view to_string(ChainFault f);

// One certificate of the built path, for error pages, `verify` and `explain`.
struct ChainElement {
  std::string subject;
  std::string issuer;
  std::string serial;      // hex
  std::int64_t not_before = 0;  // unix seconds
  std::int64_t not_after = 0;
  std::string revocation;  // "good (CRL ...)", "revoked 2026-...", "not checked (trust anchor)"
  std::string problem;     // empty when this element is fine
};

// The result of validating the presented chain against one site's trust settings.
struct ChainReport {
  ChainFault fault = ChainFault::None;
  std::string reason;  // precise, human words: "issuer 'CN=X' is not in this site's trusted list"
  std::vector<ChainElement> elements;  // leaf first, anchor last (as far as it was built)
  // fault None only because soft_fail accepts an unknown revocation status
  bool revocation_unknown_accepted = false;
};

// Basic credentials the request carried, and whether the shell found the password right.
enum class PasswordCheck : std::uint8_t { None, Valid, Invalid };

// Everything the core needs to know about one request.
struct RequestEvidence {
  bool over_tls = false;
  int cipher_bits = 0;          // secret bits of the negotiated bulk cipher
  bool cert_requested = false;  // the connection asked the client for a certificate
  bool cert_presented = false;
  const ChainReport* chain = nullptr;  // set whenever cert_presented and validation ran
  const CertFacts* cert = nullptr;     // the leaf's mapping facts (with `chain`)
  // map_certificate() of `cert`, when the shell already has it (it only depends on the
  // certificate and the configuration generation, so a connection computes it once).
  const struct Outcome* mapped = nullptr;
  PasswordCheck basic = PasswordCheck::None;
  std::string basic_user;              // the user name of the Basic credentials
};

}  // namespace certgate::auth
