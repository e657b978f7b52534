#include "pki/trust_store.hpp"

#include <openssl/objects.h>

#include <stdexcept>

namespace certgate::pki {

TrustStore::TrustStore(std::vector<X509Ptr> anchors, std::vector<X509Ptr> intermediates,
                       std::vector<X509CrlPtr> crls, TrustOptions options)
    : anchors_(std::move(anchors)),
      store_(X509_STORE_new()),
      intermediates_(sk_X509_new_null()),
      crls_(sk_X509_CRL_new_null()),
      options_(std::move(options)) {
  for (const auto& a : anchors_) X509_STORE_add_cert(store_.get(), a.get());
  for (auto& i : intermediates) sk_X509_push(intermediates_.get(), i.release());
  for (auto& c : crls) sk_X509_CRL_push(crls_.get(), c.release());
  for (const auto& oid : options_.policies) {
    ASN1_OBJECT* obj = OBJ_txt2obj(oid.c_str(), 1);
    if (obj == nullptr) throw std::invalid_argument("not a policy OID: " + oid);
    ASN1_OBJECT_free(obj);
  }
}

std::shared_ptr<TrustStore> TrustStore::with_options(TrustOptions options) const {
  std::vector<X509Ptr> anchors, inter;
  std::vector<X509CrlPtr> crls;
  for (const auto& c : anchors_) {
    X509_up_ref(c.get());
    anchors.emplace_back(c.get());
  }
  for (int i = 0; i < sk_X509_num(intermediates_.get()); ++i) {
    X509_up_ref(sk_X509_value(intermediates_.get(), i));
    inter.emplace_back(sk_X509_value(intermediates_.get(), i));
  }
  for (int i = 0; i < sk_X509_CRL_num(crls_.get()); ++i) {
    X509_CRL_up_ref(sk_X509_CRL_value(crls_.get(), i));
    crls.emplace_back(sk_X509_CRL_value(crls_.get(), i));
  }
  return std::make_shared<TrustStore>(std::move(anchors), std::move(inter), std::move(crls), std::move(options));
}

}  // namespace certgate::pki
