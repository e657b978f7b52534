// What a fetch brings back, parsed and verified before anything is cached: CRLs (signed by the
// certificate's issuer, or by a certificate of the trusted PKI for indirect and delta CRLs),
// OCSP responses (the issuer or its delegated responder, within their validity) and AIA issuer
// certificates (only those that issue the asking certificate and chain to its anchors).
// Also the cache keys, which name certificates by digest.
#include "pki/x509_text.hpp"
#include "revocation/store_impl.hpp"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

namespace certgate::revocation {
namespace {

constexpr long kOcspMaxAgeWithoutNextUpdate = 3600;

std::unique_ptr<OCSP_CERTID, pki::Deleter<OCSP_CERTID_free>> cert_id(X509* subject, X509* issuer) {
  return std::unique_ptr<OCSP_CERTID, pki::Deleter<OCSP_CERTID_free>>(
      OCSP_cert_to_id(EVP_sha1(), subject, issuer));
}

// A certificate's name in cache keys: its SHA-1 fingerprint, which OpenSSL keeps computed.
std::string cert_id_text(X509* c) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!c || X509_digest(c, EVP_sha1(), md, &n) != 1) return "-";
  return pki::hex(md, n);
}

}  // namespace

std::string_view to_string(Kind k) {
  switch (k) {
    case Kind::Crl: return "crl";
    case Kind::Ocsp: return "ocsp";
    case Kind::CaIssuers: return "ca-issuers";
  }
  return "?";
}

std::string sha256_hex(const std::string& data) { return pki::digest_hex(pki::sha256_md(), data); }

std::shared_ptr<X509_CRL> share(X509_CRL* c) { return std::shared_ptr<X509_CRL>(c, X509_CRL_free); }
std::shared_ptr<X509> share(X509* c) { return std::shared_ptr<X509>(c, X509_free); }

std::int64_t time_of(const ASN1_TIME* t) { return t ? pki::to_unix(t) : 0; }

X509_CRL* parse_crl(const std::string& body) {
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  if (X509_CRL* crl = d2i_X509_CRL(nullptr, &p, static_cast<long>(body.size()))) return crl;
  pki::BioPtr bio(BIO_new_mem_buf(body.data(), static_cast<int>(body.size())));
  return PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
}

// An AIA answer (one certificate, a certs-only PKCS#7, or PEM): at most kAiaCertificates of
// it are considered. Any chain can make the server fetch one, and each certificate that names the
// right issuer costs a path building on the store's thread, so a bundle of thousands of copies
// would cost seconds of it.
std::vector<std::shared_ptr<X509>> parse_certs(const std::string& body) {
  std::vector<std::shared_ptr<X509>> out;
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  if (X509* c = d2i_X509(nullptr, &p, static_cast<long>(body.size()))) {
    out.push_back(share(c));
    return out;
  }
  p = reinterpret_cast<const unsigned char*>(body.data());
  if (PKCS7* p7 = d2i_PKCS7(nullptr, &p, static_cast<long>(body.size()))) {  // certs-only .p7c
    STACK_OF(X509)* certs = PKCS7_type_is_signed(p7) ? p7->d.sign->cert : nullptr;
    for (int i = 0; certs && i < sk_X509_num(certs) && out.size() < kAiaCertificates; ++i) {
      X509_up_ref(sk_X509_value(certs, i));
      out.push_back(share(sk_X509_value(certs, i)));
    }
    PKCS7_free(p7);
    return out;
  }
  pki::BioPtr bio(BIO_new_mem_buf(body.data(), static_cast<int>(body.size())));
  while (out.size() < kAiaCertificates)
    if (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.push_back(share(c));
    else break;
  ERR_clear_error();
  return out;
}

void prepare(X509_CRL* crl) {
  X509_REVOKED* r = nullptr;
  ASN1_INTEGER* zero = ASN1_INTEGER_new();
  X509_CRL_get0_by_serial(crl, &r, zero);
  ASN1_INTEGER_free(zero);
}

// The issuer a certificate names (and its AKI): what an AIA answer for it must match.
std::string named_issuer_id(X509* c) {
  if (!c) return "-";
  unsigned char* der = nullptr;
  const int n = i2d_X509_NAME(X509_get_issuer_name(c), &der);
  std::string data = n > 0 ? std::string(reinterpret_cast<const char*>(der), static_cast<std::size_t>(n)) : "";
  OPENSSL_free(der);
  if (const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(c))
    data.append(reinterpret_cast<const char*>(ASN1_STRING_get0_data(aki)), static_cast<std::size_t>(ASN1_STRING_length(aki)));
  return sha256_hex(data).substr(0, 16);
}

std::string Need::subject_key() const { return key() + " " + cert_id_text(subject.get()); }

std::string Need::key() const {
  switch (kind) {
    case Kind::Crl: return "crl " + url + " " + cert_id_text(issuer.get());
    case Kind::CaIssuers: return "aia " + url + " " + named_issuer_id(subject.get());
    case Kind::Ocsp: {
      std::string id;
      if (subject && issuer)
        if (auto cid = cert_id(subject.get(), issuer.get())) {
          unsigned char* der = nullptr;
          int n = i2d_OCSP_CERTID(cid.get(), &der);
          if (n > 0) id = pki::hex(der, static_cast<std::size_t>(n));
          OPENSSL_free(der);
        }
      return "ocsp " + url + " " + id;
    }
  }
  return url;
}

std::string ocsp_request(const Need& n) {
  std::unique_ptr<OCSP_REQUEST, pki::Deleter<OCSP_REQUEST_free>> ocsp(OCSP_REQUEST_new());
  OCSP_request_add0_id(ocsp.get(), cert_id(n.subject.get(), n.issuer.get()).release());
  unsigned char* der = nullptr;
  const int len = i2d_OCSP_REQUEST(ocsp.get(), &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(std::max(len, 0)));
  OPENSSL_free(der);
  return out;
}

// RFC 5280 §5.2.3: CRL numbers increase monotonically for a given issuer and scope.
bool older_crl(const CrlEntry& next, const CrlEntry& held) {
  if (next.this_update != held.this_update) return next.this_update < held.this_update;
  using NumberPtr = std::unique_ptr<ASN1_INTEGER, decltype(&ASN1_INTEGER_free)>;
  const auto number = [](X509_CRL* crl) {
    return NumberPtr(static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr)),
                     &ASN1_INTEGER_free);
  };
  NumberPtr a = number(next.crl.get()), b = number(held.crl.get());
  return a && b && ASN1_INTEGER_cmp(a.get(), b.get()) < 0;
}

bool adds_revocations(const CrlEntry* prev, X509_CRL* next) {
  STACK_OF(X509_REVOKED)* listed = X509_CRL_get_REVOKED(next);
  if (prev == nullptr) return sk_X509_REVOKED_num(listed) > 0;
  for (int i = 0; i < sk_X509_REVOKED_num(listed); ++i) {
    X509_REVOKED* found = nullptr;
    const ASN1_INTEGER* serial = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(listed, i));
    if (X509_CRL_get0_by_serial(prev->crl.get(), &found, serial) != 1) return true;
  }
  return false;
}

// An AIA answer: only certificates that can issue the one asked for (name, AKI) and that
// chain to the requesting site's anchors are kept; anything else could be an attacker's.
Taken take_issuers(const Need& n, const std::string& body, std::int64_t now) {
  Taken t;
  auto certs = parse_certs(body);
  if (certs.empty()) {
    t.error = "the answer holds no certificate";
    return t;
  }
  std::vector<std::shared_ptr<X509>> kept;
  for (auto& c : certs)
    if (n.anchors && n.subject && n.anchors->vouches_issuer(c.get(), n.subject.get())) kept.push_back(c);
  if (kept.empty()) {
    t.about_subject = true;
    t.error = "the answer holds no certificate that issued '" +
              (n.subject ? pki::subject_text(n.subject.get()) : std::string("?")) +
              "' and chains to a trusted issuer";
    return t;
  }
  t.fresh = true;
  t.verified = std::to_string(kept.size()) + " certificate(s)";
  t.issuers = std::make_shared<IssuersEntry>(IssuersEntry{std::move(kept), now});
  return t;
}

Taken take_crl(const Need& n, const std::string& body, std::int64_t now) {
  Taken t;
  X509_CRL* raw = parse_crl(body);
  if (!raw) {
    t.error = "the answer is not a CRL";
    return t;
  }
  auto crl = share(raw);
  // A CRL from a certificate's own distribution point is signed by that certificate's issuer
  // (unless the point names a cRLIssuer: then OpenSSL checks it during validation). Anything
  // else is refused here, before it can be cached.
  std::shared_ptr<X509> signer;
  if (n.issuer && !n.indirect) {
    if (X509_NAME_cmp(X509_CRL_get_issuer(raw), X509_get_subject_name(n.issuer.get())) != 0) {
      t.error = "the CRL is issued by '" + pki::name_text(X509_CRL_get_issuer(raw)) +
                "', not by the certificate's issuer '" + pki::subject_text(n.issuer.get()) + "'";
      return t;
    }
    if (X509_CRL_verify(raw, X509_get0_pubkey(n.issuer.get())) != 1) {
      ERR_clear_error();
      t.error = "the CRL's signature does not verify with the key of '" + pki::subject_text(n.issuer.get()) + "'";
      return t;
    }
    signer = n.issuer;
  } else if (n.anchors) {  // cRLIssuer or delta CRL: signed by a certificate of the trusted PKI
    pki::X509Ptr found = n.anchors->crl_signer(raw);
    if (!found) {
      t.error = "the CRL's issuer '" + pki::name_text(X509_CRL_get_issuer(raw)) +
                "' is not a certificate that chains to a trusted issuer and verifies its signature";
      return t;
    }
    signer = share(found.release());
  } else {
    t.error = "no trusted certificate to check the CRL's signature against";
    return t;
  }
  prepare(raw);
  auto e = std::make_shared<CrlEntry>();
  e->crl = crl;
  e->issuer = signer;  // refreshes are checked directly against the key that verified it
  e->indirect = false;
  e->fetched_at = now;
  e->this_update = time_of(X509_CRL_get0_lastUpdate(raw));
  e->next_update = time_of(X509_CRL_get0_nextUpdate(raw));
  e->issuer_name = pki::name_text(X509_CRL_get_issuer(raw));
  e->bytes = body.size();
  t.fresh = e->next_update == 0 || e->next_update > now;
  if (!t.fresh) t.error = "the CRL's nextUpdate " + pki::utc_text(e->next_update) + " has passed";
  t.verified = "Base CRL (" + std::to_string(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(raw))) +
               " entries, next update " + pki::utc_text(e->next_update) + ")";
  t.crl = std::move(e);
  return t;
}

Taken take_ocsp(const Need& n, const std::string& body, std::int64_t now) {
  Taken t;
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  std::unique_ptr<OCSP_RESPONSE, pki::Deleter<OCSP_RESPONSE_free>> resp(
      d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(body.size())));
  if (!resp) {
    t.error = "the answer is not an OCSP response";
    return t;
  }
  if (int st = OCSP_response_status(resp.get()); st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    t.error = std::string("the responder answered ") + OCSP_response_status_str(st);
    return t;
  }
  std::unique_ptr<OCSP_BASICRESP, pki::Deleter<OCSP_BASICRESP_free>> basic(OCSP_response_get1_basic(resp.get()));
  if (!basic) {
    t.error = "the OCSP response has no basic response";
    return t;
  }
  // The responder must be the issuer or a responder it delegated (OCSPSigning EKU).
  pki::X509StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), n.issuer.get());
  X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
  // A delegated responder's certificate is judged at the store's time, not the system's.
  X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store.get()), static_cast<time_t>(now));
  pki::X509StackView certs(sk_X509_new_null());
  sk_X509_push(certs.get(), n.issuer.get());
  if (OCSP_basic_verify(basic.get(), certs.get(), store.get(), 0) != 1) {
    t.error = "the OCSP response's signature is not the issuer's or its delegated responder's: " +
              pki::openssl_errors();
    return t;
  }
  auto id = cert_id(n.subject.get(), n.issuer.get());
  int status = 0, reason = 0;
  ASN1_GENERALIZEDTIME *rev = nullptr, *thisupd = nullptr, *nextupd = nullptr;
  if (OCSP_resp_find_status(basic.get(), id.get(), &status, &reason, &rev, &thisupd, &nextupd) != 1) {
    t.error = "the OCSP response does not mention the certificate";
    return t;
  }
  // Without nextUpdate nothing bounds a response's age, so a years-old "good" answer replayed
  // by someone on the path would pass: such an answer must be recent (thisUpdate within an hour).
  const std::int64_t this_update = time_of(thisupd), next_update = time_of(nextupd);
  // (OCSP_check_validity's rules, 300 s of skew, on the store's clock rather than time().)
  const bool valid = this_update <= now + 300 &&
                     (nextupd ? next_update >= now - 300 && next_update >= this_update
                              : this_update >= now - kOcspMaxAgeWithoutNextUpdate);
  if (!valid) {
    t.error = nextupd ? "the OCSP response is outside its validity period"
                      : "the OCSP response has no nextUpdate and its thisUpdate is more than an hour old";
    return t;
  }
  auto e = std::make_shared<OcspEntry>();
  e->status = status == V_OCSP_CERTSTATUS_GOOD ? OcspStatus::Good
              : status == V_OCSP_CERTSTATUS_REVOKED ? OcspStatus::Revoked : OcspStatus::Unknown;
  e->revoked_at = time_of(rev);
  e->this_update = this_update;
  // No nextUpdate: the responder always has fresh status; reuse the answer for a while.
  e->next_update = nextupd ? next_update : now + 300;
  e->fetched_at = now;
  e->url = n.url;
  t.fresh = true;
  t.verified = std::string("OCSP ") + OCSP_cert_status_str(status);
  t.ocsp = std::move(e);
  return t;
}

}  // namespace certgate::revocation
