#pragma once
// X509 → auth::CertFacts: the only code that reads certificate fields for mapping.
#include "auth/cert_facts.hpp"

#include <openssl/x509.h>

namespace certgate::pki {

auth::CertFacts cert_facts(X509* cert);
std::vector<auth::NameAttr> name_attrs(const X509_NAME* name);

}  // namespace certgate::pki
