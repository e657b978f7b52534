// What a CRL distribution point, an OCSP responder or an AIA URL answers, as the revocation
// store takes it in. The store's own steps (revocation/store.cpp, Store::Impl::take_crl and
// take_ocsp, and parse_certs) are private to that file; this harness runs the same sequence on
// the same project helpers. The first input byte picks the kind of answer:
// 'C' a CRL (DER or PEM), 'O' an OCSP response, anything else issuer certificates (AIA).
#include "fuzz_util.hpp"
#include "pki/load.hpp"
#include "pki/openssl_ptr.hpp"
#include "pki/x509_text.hpp"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

using namespace certgate;

namespace {

#include "revocation_pki.inc"

X509* from_pem(const char* pem) {
  pki::BioPtr bio(BIO_new_mem_buf(pem, -1));
  X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (!c) std::abort();
  return c;
}

struct Pki {
  pki::X509Ptr issuer{from_pem(kIssuerPem)}, alice{from_pem(kAlicePem)}, bob{from_pem(kBobPem)};
};
const Pki& fixed() {
  static const Pki p;
  return p;
}

std::int64_t time_of(const ASN1_TIME* t) { return t ? pki::to_unix(t) : 0; }

void take_crl(std::string_view body) {
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  pki::X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(body.size())));
  if (!crl) {
    pki::BioPtr bio(BIO_new_mem_buf(body.data(), static_cast<int>(body.size())));
    crl.reset(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  }
  if (!crl) return;
  X509* issuer = fixed().issuer.get();
  (void)pki::name_text(X509_CRL_get_issuer(crl.get()));
  const bool verified = X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(issuer)) == 0 &&
                        X509_CRL_verify(crl.get(), X509_get0_pubkey(issuer)) == 1;
  ERR_clear_error();
  // Sorting the entries once (what the store's prepare() does), then the lookups validation makes.
  X509_REVOKED* r = nullptr;
  std::unique_ptr<ASN1_INTEGER, pki::Deleter<ASN1_INTEGER_free>> zero(ASN1_INTEGER_new());
  X509_CRL_get0_by_serial(crl.get(), &r, zero.get());
  (void)pki::utc_text(time_of(X509_CRL_get0_lastUpdate(crl.get())));
  (void)pki::utc_text(time_of(X509_CRL_get0_nextUpdate(crl.get())));
  (void)sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl.get()));
  for (X509* c : {fixed().alice.get(), fixed().bob.get()}) {
    r = nullptr;
    if (X509_CRL_get0_by_cert(crl.get(), &r, c) == 1 && r) (void)time_of(X509_REVOKED_get0_revocationDate(r));
  }
  (void)verified;
}

void take_ocsp(std::string_view body) {
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  std::unique_ptr<OCSP_RESPONSE, pki::Deleter<OCSP_RESPONSE_free>> resp(
      d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(body.size())));
  if (!resp) return;
  (void)OCSP_response_status_str(OCSP_response_status(resp.get()));
  std::unique_ptr<OCSP_BASICRESP, pki::Deleter<OCSP_BASICRESP_free>> basic(OCSP_response_get1_basic(resp.get()));
  if (!basic) return;
  X509* issuer = fixed().issuer.get();
  pki::X509StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), issuer);
  X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
  pki::X509StackView certs(sk_X509_new_null());
  sk_X509_push(certs.get(), issuer);
  (void)OCSP_basic_verify(basic.get(), certs.get(), store.get(), 0);
  (void)pki::openssl_errors();
  // The store stops at a bad signature; the status lookup runs regardless here, since it reads
  // the same untrusted bytes.
  for (X509* subject : {fixed().alice.get(), fixed().bob.get()}) {
    std::unique_ptr<OCSP_CERTID, pki::Deleter<OCSP_CERTID_free>> id(OCSP_cert_to_id(EVP_sha1(), subject, issuer));
    int status = 0, reason = 0;
    ASN1_GENERALIZEDTIME *rev = nullptr, *thisupd = nullptr, *nextupd = nullptr;
    if (OCSP_resp_find_status(basic.get(), id.get(), &status, &reason, &rev, &thisupd, &nextupd) != 1) continue;
    (void)OCSP_check_validity(thisupd, nextupd, 300, -1);
    (void)OCSP_cert_status_str(status);
    (void)pki::utc_text(time_of(rev));
    (void)pki::utc_text(time_of(thisupd));
    (void)pki::utc_text(time_of(nextupd));
  }
  ERR_clear_error();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body = fuzz::bytes(data + 1, size - 1);
  switch (data[0]) {
    case 'C': take_crl(body); break;
    case 'O': take_ocsp(body); break;
    default:
      for (const auto& c : pki::parse_certificates(std::string(body))) (void)pki::subject_text(c.get());
      break;
  }
  ERR_clear_error();
  return 0;
}
