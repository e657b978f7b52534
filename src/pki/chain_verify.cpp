#include "pki/chain_verify.hpp"

#include "pki/x509_text.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>

namespace certgate::pki {
namespace {

using auth::ChainFault;

constexpr int kMinSecurityBits = 112;  // OpenSSL security level 2

// One problem OpenSSL reported during path validation, with the certificate it concerns.
struct Problem {
  int depth;
  int code;
  X509Ptr cert;
};

struct Collected {
  std::vector<Problem> problems;
  RevocationSource* source = nullptr;
};

bool crl_unavailable(int code) {
  return code == X509_V_ERR_UNABLE_TO_GET_CRL || code == X509_V_ERR_CRL_HAS_EXPIRED ||
         code == X509_V_ERR_CRL_NOT_YET_VALID;
}

int collect_cb(int ok, X509_STORE_CTX* ctx) {
  if (ok) return 1;
  auto* collected = static_cast<Collected*>(X509_STORE_CTX_get_app_data(ctx));
  // OpenSSL validates an indirect CRL's own path in a child context that inherits this callback
  // but not the app data: there OpenSSL's answer stands (the parent records the CRL problem).
  if (collected == nullptr) return ok;
  X509* cert = X509_STORE_CTX_get_current_cert(ctx);
  const int depth = X509_STORE_CTX_get_error_depth(ctx);
  int code = X509_STORE_CTX_get_error(ctx);
  if (RevocationSource* src = collected->source; src && cert) {
    if (crl_unavailable(code)) {
      STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx);
      X509* issuer = depth + 1 < sk_X509_num(chain) ? sk_X509_value(chain, depth + 1) : nullptr;
      // The trust anchor's own status is never asked for (behaviour.md §2 "revocation").
      if (depth >= X509_STORE_CTX_get_num_untrusted(ctx)) return 1;
      code = src->crl_problem(cert, issuer, code);
      if (code == X509_V_OK) return 1;
    } else if (code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
               code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT) {
      src->missing_issuer(cert);
    }
  }
  if (cert != nullptr) X509_up_ref(cert);
  collected->problems.push_back({depth, code, X509Ptr(cert)});
  // Keep going: every problem is recorded and the most important one is chosen below, so an
  // expired certificate is reported as expired even when its CRL entry was dropped.
  return 1;
}

// The RFC 5280 profile checks OpenSSL makes only under X509_V_FLAG_X509_STRICT.
bool strict_profile_code(int code) {
  switch (code) {
    case X509_V_ERR_PATHLEN_INVALID_FOR_NON_CA:
    case X509_V_ERR_PATHLEN_WITHOUT_KU_KEY_CERT_SIGN:
    case X509_V_ERR_KU_KEY_CERT_SIGN_INVALID_FOR_NON_CA:
    case X509_V_ERR_ISSUER_NAME_EMPTY:
    case X509_V_ERR_SUBJECT_NAME_EMPTY:
    case X509_V_ERR_MISSING_AUTHORITY_KEY_IDENTIFIER:
    case X509_V_ERR_MISSING_SUBJECT_KEY_IDENTIFIER:
    case X509_V_ERR_EMPTY_SUBJECT_ALT_NAME:
    case X509_V_ERR_EMPTY_SUBJECT_SAN_NOT_CRITICAL:
    case X509_V_ERR_CA_BCONS_NOT_CRITICAL:
    case X509_V_ERR_AUTHORITY_KEY_IDENTIFIER_CRITICAL:
    case X509_V_ERR_SUBJECT_KEY_IDENTIFIER_CRITICAL:
    case X509_V_ERR_CA_CERT_MISSING_KEY_USAGE:
    case X509_V_ERR_EXTENSIONS_REQUIRE_VERSION_3:
    case X509_V_ERR_EC_KEY_EXPLICIT_PARAMS:
    case X509_V_ERR_SIGNATURE_ALGORITHM_INCONSISTENCY:
      return true;
    default:
      return false;
  }
}

}  // namespace

// The single translation of OpenSSL verify errors (spec: style.md recommendation 4).
ChainFault classify_verify_error(int code) {
  switch (code) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
      return ChainFault::UntrustedRoot;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
      return ChainFault::BadSignature;
    case X509_V_ERR_CA_MD_TOO_WEAK:
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL:
      return ChainFault::WeakCrypto;
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
      return ChainFault::NotYetValid;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
      return ChainFault::Expired;
    case X509_V_ERR_CERT_REVOKED:
      return ChainFault::Revoked;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
    case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
    case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
    case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
    case X509_V_ERR_DIFFERENT_CRL_SCOPE:
    case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
    case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
      return ChainFault::RevocationUnknown;
    case X509_V_ERR_INVALID_PURPOSE:
      return ChainFault::WrongUsage;
    default:
      // basicConstraints, pathLen, name and policy constraints, critical extensions, and any
      // code a newer OpenSSL adds: a constraint failure is still a 403.16, never an accept.
      return ChainFault::Constraint;
  }
}

namespace {

ChainFault classify(int code) { return classify_verify_error(code); }

// Lower rank wins when several faults are present (spec: docs/validation.md "which error wins").
int rank(ChainFault f) {
  switch (f) {
    case ChainFault::Malformed: return 0;
    case ChainFault::UntrustedRoot: return 1;
    case ChainFault::BadSignature: return 2;
    case ChainFault::WeakCrypto: return 2;
    case ChainFault::Constraint: return 3;
    case ChainFault::WrongUsage: return 4;
    case ChainFault::Expired: return 5;
    case ChainFault::NotYetValid: return 5;
    case ChainFault::Revoked: return 6;
    case ChainFault::RevocationUnknown: return 7;
    case ChainFault::None: return 99;
  }
  return 99;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

const char* role(int depth) { return depth == 0 ? "certificate" : "chain certificate"; }

// The CRL entry revoking `cert`, searched in the site's CRLs by issuer name.
std::string revocation_date(const TrustStore& trust, X509* cert) {
  STACK_OF(X509_CRL)* crls = trust.crls();
  for (int i = 0; i < sk_X509_CRL_num(crls); ++i) {
    X509_CRL* crl = sk_X509_CRL_value(crls, i);
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(cert)) != 0) continue;
    X509_REVOKED* entry = nullptr;
    if (X509_CRL_get0_by_cert(crl, &entry, cert) == 1 && entry != nullptr)
      return utc_text(to_unix(X509_REVOKED_get0_revocationDate(entry)));
  }
  return "";
}

// The strength min_rsa_bits stands for (SP 800-57: 1024 → 80, 2048 → 112, 3072 → 128).
int min_rsa_security_bits(const TrustOptions& o) { return BN_security_bits(o.min_rsa_bits, -1); }

// The bits of a DSA key's subgroup order q (0 when unreadable).
int dsa_q_bits(EVP_PKEY* key) {
  BIGNUM* q = nullptr;
  if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_FFC_Q, &q) != 1) return 0;
  const int bits = BN_num_bits(q);
  BN_free(q);
  return bits;
}

// Below the minimum: RSA by modulus size (min_rsa_bits); DSA by modulus size and by the
// strength that size stands for, since a 2048-bit p over a 160-bit q is only as strong as
// RSA-1024 (a discrete log in the subgroup); every other key type by its security strength
// (112 bits: P-224 and up, Ed25519, Ed448).
bool weak_key(EVP_PKEY* key, const TrustOptions& o) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
      return EVP_PKEY_get_bits(key) < o.min_rsa_bits;
    case EVP_PKEY_DSA:
      return EVP_PKEY_get_bits(key) < o.min_rsa_bits ||
             EVP_PKEY_get_security_bits(key) < min_rsa_security_bits(o);
    default:
      return EVP_PKEY_get_security_bits(key) < kMinSecurityBits;
  }
}

// A signature made with a digest weaker than 112 bits of security; SHA-1 only when allowed.
// MD5 and older are never accepted: collisions for them are practical.
bool weak_digest(X509* cert, const TrustOptions& o) {
  int md = NID_undef, secbits = 0;
  // No answer for an algorithm OpenSSL cannot name: its signature check fails on its own.
  if (X509_get_signature_info(cert, &md, nullptr, &secbits, nullptr) != 1) return false;
  if (md == NID_sha1) return !o.allow_sha1;
  return secbits < kMinSecurityBits;
}

// Security level 2 by default, done here rather than by X509_VERIFY_PARAM_set_auth_level: its
// levels tie key size and digest together (level 1 refuses SHA-1 too), while legacy smart card
// deployments need min_rsa_bits and allow_sha1 separately. The trust anchor's key counts (a
// factorable root signs anything), its own self-signature does not.
void check_strength(X509_STORE_CTX* ctx, const TrustOptions& o, std::vector<Problem>& problems) {
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx);
  const int n = sk_X509_num(chain);
  const int below_anchor = X509_STORE_CTX_get_num_untrusted(ctx);
  for (int i = 0; i < n; ++i) {
    X509* c = sk_X509_value(chain, i);
    int code = X509_V_OK;
    if (EVP_PKEY* key = X509_get0_pubkey(c); key && weak_key(key, o))
      code = i == 0 ? X509_V_ERR_EE_KEY_TOO_SMALL : X509_V_ERR_CA_KEY_TOO_SMALL;
    else if (i < below_anchor && weak_digest(c, o))
      code = X509_V_ERR_CA_MD_TOO_WEAK;
    if (code == X509_V_OK) continue;
    X509_up_ref(c);
    problems.push_back({i, code, X509Ptr(c)});
  }
}

std::string weakness_text(const TrustOptions& o, const Problem& p, const std::string& subject) {
  X509* c = p.cert.get();
  const std::string who = std::string(role(p.depth)) + " " + subject;
  if (p.code == X509_V_ERR_CA_MD_TOO_WEAK) {
    int md = NID_undef, secbits = 0;
    X509_get_signature_info(c, &md, nullptr, &secbits, nullptr);
    const std::string alg = OBJ_nid2ln(X509_get_signature_nid(c));
    if (md == NID_sha1)
      return who + " is signed with SHA-1 (" + alg +
             "); this site does not accept SHA-1 signatures (allow_sha1)";
    return who + " is signed with " + (md == NID_undef ? alg : OBJ_nid2sn(md)) + " (" + alg +
           "), a digest too weak to rely on; it is never accepted";
  }
  EVP_PKEY* key = X509_get0_pubkey(c);
  const int id = EVP_PKEY_get_base_id(key);
  const std::string type = EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "unknown";
  const std::string bits = std::to_string(EVP_PKEY_get_bits(key));
  if (id == EVP_PKEY_DSA && EVP_PKEY_get_bits(key) >= o.min_rsa_bits)
    return who + " has a " + bits + "-bit DSA key with a " + std::to_string(dsa_q_bits(key)) +
           "-bit subgroup (" + std::to_string(EVP_PKEY_get_security_bits(key)) +
           " bits of security); this site requires " + std::to_string(min_rsa_security_bits(o)) +
           " (min_rsa_bits " + std::to_string(o.min_rsa_bits) + ")";
  if (id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS || id == EVP_PKEY_DSA)
    return who + " has a " + bits + "-bit " + type + " key; this site requires at least " +
           std::to_string(o.min_rsa_bits) + " bits (min_rsa_bits)";
  return who + " has a " + bits + "-bit " + type + " key (" +
         std::to_string(EVP_PKEY_get_security_bits(key)) +
         " bits of security); this site requires at least " + std::to_string(kMinSecurityBits) +
         " (P-224 or larger)";
}

std::string key_id_text(const ASN1_OCTET_STRING* id) {
  if (id == nullptr || ASN1_STRING_length(id) == 0) return "none";
  std::string out;
  const unsigned char* b = ASN1_STRING_get0_data(id);
  for (int i = 0; i < ASN1_STRING_length(id); ++i) {
    if (i) out += ':';
    out += hex(b + i, 1, true);
  }
  return out;
}

// A trusted CA (or configured intermediate) named `name` whose key is not the one that signed:
// an impostor CA copies a trusted CA's name, and "not in the trusted list" would send the
// administrator looking for a CA that is plainly there.
X509* same_name_ca(const TrustStore& trust, const X509_NAME* name) {
  for (const auto& a : trust.anchors())
    if (X509_NAME_cmp(X509_get_subject_name(a.get()), name) == 0) return a.get();
  if (STACK_OF(X509)* more = trust.intermediates())
    for (int i = 0; i < sk_X509_num(more); ++i)
      if (X509_NAME_cmp(X509_get_subject_name(sk_X509_value(more, i)), name) == 0) return sk_X509_value(more, i);
  return nullptr;
}

std::string describe(const TrustStore& trust, const Problem& p, ChainFault fault,
                     RevocationSource* source) {
  X509* c = p.cert.get();
  const std::string subject = c ? quoted(subject_text(c)) : "'?'";
  const std::string issuer = c ? quoted(issuer_text(c)) : "'?'";
  switch (fault) {
    case ChainFault::UntrustedRoot:
      if (c && (p.code == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT || p.code == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN))
        if (X509* trusted = same_name_ca(trust, X509_get_subject_name(c)))
          return std::string(p.code == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ? "certificate " : "root ") +
                 subject + " is not the trusted CA of that name: a CA named " + subject +
                 " is trusted, but with another key (this one's key identifier " +
                 key_id_text(X509_get0_subject_key_id(c)) + ", the trusted CA's " +
                 key_id_text(X509_get0_subject_key_id(trusted)) + ")";
      if (c && p.code != X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT && p.code != X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
        if (X509* trusted = same_name_ca(trust, X509_get_issuer_name(c)))
          return "issuer " + issuer + " of " + subject +
                 ": a CA with this name is trusted, but its key did not sign the certificate "
                 "(the certificate's authority key identifier " +
                 key_id_text(X509_get0_authority_key_id(c)) + ", the trusted CA's subject key identifier " +
                 key_id_text(X509_get0_subject_key_id(trusted)) + ")";
      if (p.code == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)
        return "certificate " + subject + " is self-signed and not in this site's trusted list";
      if (p.code == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
        return "root " + subject + " is not in this site's trusted list";
      return "issuer " + issuer + " of " + subject +
             " is not in this site's trusted list (and no intermediate with that name was sent "
             "by the client or configured)";
    case ChainFault::BadSignature:
      return std::string("signature of ") + role(p.depth) + " " + subject +
             " does not verify with the key of its issuer " + issuer + " (" +
             X509_verify_cert_error_string(p.code) + ")";
    case ChainFault::Expired:
      if (p.code == X509_V_ERR_CERT_HAS_EXPIRED && c)
        return std::string(role(p.depth)) + " " + subject + " expired " +
               utc_text(to_unix(X509_get0_notAfter(c)));
      return std::string(role(p.depth)) + " " + subject + " has an unreadable notAfter date";
    case ChainFault::NotYetValid:
      if (p.code == X509_V_ERR_CERT_NOT_YET_VALID && c)
        return std::string(role(p.depth)) + " " + subject + " is not valid before " +
               utc_text(to_unix(X509_get0_notBefore(c)));
      return std::string(role(p.depth)) + " " + subject + " has an unreadable notBefore date";
    case ChainFault::Revoked: {
      if (source && c)
        if (std::string how = source->revoked_detail(c); !how.empty())
          return std::string(role(p.depth)) + " " + subject + " (serial " + serial_hex(c) + ") " + how;
      std::string when = c ? revocation_date(trust, c) : "";
      return std::string(role(p.depth)) + " " + subject + " (serial " +
             (c ? serial_hex(c) : "?") + ") was revoked" + (when.empty() ? "" : " on " + when) +
             " by " + issuer;
    }
    case ChainFault::RevocationUnknown:
      if (source && c)
        if (std::string why = source->unknown_detail(c); !why.empty())
          return "revocation status of " + subject + " is unknown: " + why;
      if (p.code == X509_V_ERR_UNABLE_TO_GET_CRL)
        return "revocation status of " + subject + " is unknown: no CRL from " + issuer +
               " is available (revocation = cache-only: add it to crl_files)";
      if (p.code == X509_V_ERR_CRL_HAS_EXPIRED)
        return "revocation status of " + subject + " is unknown: the CRL from " + issuer +
               " has passed its nextUpdate";
      return "revocation status of " + subject + " is unknown: " +
             X509_verify_cert_error_string(p.code);
    case ChainFault::WeakCrypto:
      if (c == nullptr) break;
      return weakness_text(trust.options(), p, subject);
    case ChainFault::WrongUsage:
      return "certificate " + subject + " is not valid for client authentication";
    default:
      break;
  }
  if (p.code == X509_V_ERR_CERT_CHAIN_TOO_LONG)
    return "certification path too long: more than " +
           std::to_string(trust.options().max_chain_depth) +
           " CA certificates between the certificate and a trust anchor (max_chain_depth)";
  if (c == nullptr)  // path-wide checks (policy) name no single certificate
    return std::string("certification path: ") + X509_verify_cert_error_string(p.code);
  std::string text = std::string(role(p.depth)) + " " + subject + ": " +
                     X509_verify_cert_error_string(p.code);
  if (strict_profile_code(p.code)) text += " (RFC 5280 profile check; x509_strict)";
  return text;
}

bool eku_excludes_client_auth(X509* cert) {
  return (X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) &&
         (X509_get_extended_key_usage(cert) & (XKU_SSL_CLIENT | XKU_ANYEKU)) == 0;
}

// A usage fault and the depth of the certificate that causes it.
struct UsageProblem {
  int depth;
  std::string reason;
};

// EKU must allow clientAuth and keyUsage digitalSignature (spec: behaviour.md §2 "usage").
// A leaf with no EKU extension is valid for every usage, as on Windows and in PKITS.
std::optional<UsageProblem> leaf_usage_problem(X509* leaf) {
  if (eku_excludes_client_auth(leaf))
    return UsageProblem{0, "certificate " + quoted(subject_text(leaf)) +
                               " is not valid for client authentication: its Extended Key Usage "
                               "lacks clientAuth (1.3.6.1.5.5.7.3.2)"};
  if ((X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) &&
      (X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE) == 0)
    return UsageProblem{0, "certificate " + quoted(subject_text(leaf)) +
                               " is not valid for client authentication: its Key Usage lacks "
                               "digitalSignature"};
  return std::nullopt;
}

// Windows intersects the EKU of every certificate in the path (CertGetCertificateChain's
// effective usage), anchor included: a CA whose EKU extension leaves out clientAuth cannot
// vouch for a client, whatever its leaves claim (CERT_E_WRONG_USAGE). A CA without the
// extension does not restrict. OpenSSL's SSL-client purpose is not used for this: it refuses
// a CA whose EKU is anyExtendedKeyUsage, which Windows accepts, and judges Netscape cert types.
std::optional<UsageProblem> ca_usage_problem(X509_STORE_CTX* ctx, X509* leaf) {
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx);
  for (int i = 1; i < sk_X509_num(chain); ++i) {
    X509* ca = sk_X509_value(chain, i);
    if (!eku_excludes_client_auth(ca)) continue;
    return UsageProblem{i, "chain certificate " + quoted(subject_text(ca)) +
                               " restricts the certificates it vouches for: its Extended Key "
                               "Usage lacks clientAuth (1.3.6.1.5.5.7.3.2), so certificate " +
                               quoted(subject_text(leaf)) +
                               " is not valid for client authentication"};
  }
  return std::nullopt;
}

void configure(X509_STORE_CTX* ctx, const TrustOptions& o, std::optional<std::int64_t> at) {
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  unsigned long flags = X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_POLICY_CHECK;
  if (o.revocation != RevocationMode::Off)
    flags |= X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL |
             X509_V_FLAG_EXTENDED_CRL_SUPPORT | X509_V_FLAG_USE_DELTAS;
  if (o.explicit_policy) flags |= X509_V_FLAG_EXPLICIT_POLICY;
  if (o.inhibit_policy_mapping) flags |= X509_V_FLAG_INHIBIT_MAP;
  if (o.inhibit_any_policy) flags |= X509_V_FLAG_INHIBIT_ANY;
  if (o.x509_strict) flags |= X509_V_FLAG_X509_STRICT;
  X509_VERIFY_PARAM_set_flags(param, flags);
  X509_VERIFY_PARAM_set_depth(param, o.max_chain_depth);
  // RFC 5280 §6.1.1: an empty initial policy set means {anyPolicy}; OpenSSL needs it spelled.
  if (o.policies.empty())
    X509_VERIFY_PARAM_add0_policy(param, OBJ_nid2obj(NID_any_policy));
  for (const auto& oid : o.policies)
    X509_VERIFY_PARAM_add0_policy(param, OBJ_txt2obj(oid.c_str(), 1));
  if (at) X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(*at));
}

void fill_elements(const TrustStore& trust, X509_STORE_CTX* ctx,
                   const std::vector<Problem>& problems, auth::ChainReport& report,
                   RevocationSource* source) {
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx);
  const int n = sk_X509_num(chain);
  const int untrusted = X509_STORE_CTX_get_num_untrusted(ctx);
  for (int i = 0; i < n; ++i) {
    X509* c = sk_X509_value(chain, i);
    auth::ChainElement e{subject_text(c), issuer_text(c), serial_hex(c),
                         to_unix(X509_get0_notBefore(c)), to_unix(X509_get0_notAfter(c)), "", ""};
    const bool anchor = i >= untrusted;
    std::string revocation_problem;
    for (const auto& p : problems) {
      if (p.depth != i) continue;
      ChainFault f = classify(p.code);
      std::string text = describe(trust, p, f, source);
      if (f == ChainFault::Revoked || f == ChainFault::RevocationUnknown) {
        if (revocation_problem.empty()) revocation_problem = text;
      } else if (e.problem.empty()) {
        e.problem = text;
      }
    }
    if (anchor)
      e.revocation = "not checked (trust anchor)";
    else if (trust.options().revocation == RevocationMode::Off)
      e.revocation = "not checked (revocation = off)";
    else if (!revocation_problem.empty())
      e.revocation = revocation_problem;
    else if (std::string good = source ? source->good_detail(c) : ""; !good.empty())
      e.revocation = "good (" + good + ")";
    else
      e.revocation = "good (local CRL of " + quoted(e.issuer) + ")";
    report.elements.push_back(std::move(e));
  }
}

}  // namespace

auth::ChainReport verify_chain(const TrustStore& trust, X509* leaf, STACK_OF(X509) * presented,
                               std::optional<std::int64_t> at, Detail detail,
                               RevocationSource* source) {
  auth::ChainReport report;
  if (leaf == nullptr) {
    report.fault = ChainFault::Malformed;
    report.reason = "no certificate to validate";
    return report;
  }
  if (X509_get_extension_flags(leaf) & EXFLAG_INVALID) {
    report.fault = ChainFault::Malformed;
    report.reason = "certificate " + quoted(subject_text(leaf)) +
                    " has malformed or duplicate extensions";
    return report;
  }

  // Untrusted pool: what the client sent, then the site's configured intermediates.
  X509StackView untrusted(sk_X509_new_null());
  for (int i = 0; presented && i < sk_X509_num(presented); ++i)
    sk_X509_push(untrusted.get(), sk_X509_value(presented, i));
  for (int i = 0; i < sk_X509_num(trust.intermediates()); ++i)
    sk_X509_push(untrusted.get(), sk_X509_value(trust.intermediates(), i));
  // Fetched material: the source owns what it adds (references held until this returns).
  X509StackPtr extra(sk_X509_new_null());
  CrlStackPtr crls(sk_X509_CRL_new_null());
  const bool checks_revocation = trust.options().revocation != RevocationMode::Off;
  if (checks_revocation)
    for (int i = 0; i < sk_X509_CRL_num(trust.crls()); ++i) {
      X509_CRL_up_ref(sk_X509_CRL_value(trust.crls(), i));
      sk_X509_CRL_push(crls.get(), sk_X509_CRL_value(trust.crls(), i));
    }
  if (source) {
    source->add_material(leaf, untrusted.get(), checks_revocation ? crls.get() : nullptr, extra.get());
    for (int i = 0; i < sk_X509_num(extra.get()); ++i) sk_X509_push(untrusted.get(), sk_X509_value(extra.get(), i));
  }

  Collected collected;
  collected.source = source;
  std::vector<Problem>& problems = collected.problems;
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), trust.store(), leaf, untrusted.get()) != 1) {
    report.fault = ChainFault::Malformed;
    report.reason = "cannot start certificate validation: " + openssl_errors();
    return report;
  }
  configure(ctx.get(), trust.options(), at);
  if (checks_revocation) X509_STORE_CTX_set0_crls(ctx.get(), crls.get());
  X509_STORE_CTX_set_app_data(ctx.get(), &collected);
  X509_STORE_CTX_set_verify_cb(ctx.get(), collect_cb);
  const int ok = X509_verify_cert(ctx.get());
  if (ok != 1 && problems.empty())  // an internal failure with no callback: still a deny
    problems.push_back({0, X509_STORE_CTX_get_error(ctx.get()), nullptr});
  check_strength(ctx.get(), trust.options(), problems);
  // Past max_chain_depth OpenSSL stops building, and then also finds no issuer for the last
  // certificate it kept: that is the length limit speaking, not an untrusted root.
  if (std::any_of(problems.begin(), problems.end(),
                  [](const Problem& p) { return p.code == X509_V_ERR_CERT_CHAIN_TOO_LONG; }))
    std::erase_if(problems, [](const Problem& p) { return classify(p.code) == ChainFault::UntrustedRoot; });

  std::optional<UsageProblem> usage;
  if (trust.options().usage_check) {
    usage = leaf_usage_problem(leaf);
    if (!usage) usage = ca_usage_problem(ctx.get(), leaf);
    if (usage) {
      report.fault = ChainFault::WrongUsage;
      report.reason = usage->reason;
    }
  }
  const Problem* worst = nullptr;
  ChainFault worst_fault = ChainFault::None;
  for (const auto& p : problems) {
    ChainFault f = classify(p.code);
    if (worst == nullptr || rank(f) < rank(worst_fault) ||
        (rank(f) == rank(worst_fault) && p.depth < worst->depth)) {
      worst = &p;
      worst_fault = f;
    }
  }
  if (worst != nullptr && rank(worst_fault) < rank(report.fault)) {
    report.fault = worst_fault;
    report.reason = describe(trust, *worst, worst_fault, source);
  }
  if (detail == Detail::Full) {
    fill_elements(trust, ctx.get(), problems, report, source);
    if (report.fault == ChainFault::WrongUsage && usage &&
        static_cast<std::size_t>(usage->depth) < report.elements.size())
      report.elements[static_cast<std::size_t>(usage->depth)].problem = report.reason;
  }
  return report;
}

AnchorCheck::AnchorCheck(const TrustStore& trust, STACK_OF(X509) * untrusted, std::int64_t at)
    : untrusted_(untrusted ? X509_chain_up_ref(untrusted) : sk_X509_new_null()), options_(trust.options()), at_(at) {
  X509_STORE_up_ref(trust.store());
  store_.reset(trust.store());
  options_.revocation = RevocationMode::Off;  // the gate runs before any revocation material exists
}

std::vector<X509Ptr> AnchorCheck::path(X509* cert) const {
  std::vector<X509Ptr> out;
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || !untrusted_ || X509_STORE_CTX_init(ctx.get(), store_.get(), cert, untrusted_.get()) != 1) {
    ERR_clear_error();
    return out;
  }
  configure(ctx.get(), options_, at_);
  // No callback: any problem at all (untrusted root, bad signature, constraint, expiry) fails.
  if (X509_verify_cert(ctx.get()) != 1) {
    ERR_clear_error();
    return out;
  }
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    X509_up_ref(sk_X509_value(chain, i));
    out.emplace_back(sk_X509_value(chain, i));
  }
  return out;
}

bool AnchorCheck::vouches_issuer(X509* candidate, X509* subject) const {
  return X509_check_issued(candidate, subject) == X509_V_OK && !path(candidate).empty();
}

X509Ptr AnchorCheck::crl_signer(X509_CRL* crl) const {
  X509StackPtr pool(X509_STORE_get1_all_certs(store_.get()));
  if (!pool) pool.reset(sk_X509_new_null());
  for (int i = 0; i < sk_X509_num(untrusted_.get()); ++i) {
    X509_up_ref(sk_X509_value(untrusted_.get(), i));
    sk_X509_push(pool.get(), sk_X509_value(untrusted_.get(), i));
  }
  for (int i = 0; i < sk_X509_num(pool.get()); ++i) {
    X509* c = sk_X509_value(pool.get(), i);
    if (X509_NAME_cmp(X509_get_subject_name(c), X509_CRL_get_issuer(crl)) != 0) continue;
    if (X509_CRL_verify(crl, X509_get0_pubkey(c)) != 1) {
      ERR_clear_error();
      continue;
    }
    if (path(c).empty()) continue;
    X509_up_ref(c);
    return X509Ptr(c);
  }
  return nullptr;
}

}  // namespace certgate::pki
