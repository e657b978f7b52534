// Extended Key Usage along the whole path (issue 14 item 6): as on Windows, a CA whose EKU
// extension leaves out clientAuth makes its leaves wrong-usage; a CA without the extension, or
// with anyExtendedKeyUsage, does not restrict. Certificates are made here, per row.
#include "auth/decide.hpp"
#include "pki/chain_verify.hpp"

#include <openssl/x509v3.h>

#include <gtest/gtest.h>

namespace certgate::pki {
namespace {

using auth::ChainFault;

struct Issued {
  EvpPkeyPtr key;
  X509Ptr cert;
};

// `eku`: the extendedKeyUsage value in openssl.cnf words, or "" for none.
Issued make(const std::string& cn, const Issued* issuer, bool ca, const std::string& eku) {
  Issued out;
  out.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  out.cert.reset(X509_new());
  X509* c = out.cert.get();
  X509_set_version(c, X509_VERSION_3);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
  X509_gmtime_adj(X509_getm_notBefore(c), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c), 3600 * 24);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer->cert.get())
                                 : X509_get_subject_name(c));
  X509_set_pubkey(c, out.key.get());
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer ? issuer->cert.get() : c, c, nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    ASSERT_NE(ext, nullptr) << value;
    X509_add_ext(c, ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add(NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  add(NID_subject_key_identifier, "hash");
  if (issuer) add(NID_authority_key_identifier, "keyid");
  if (!eku.empty()) add(NID_ext_key_usage, eku);
  X509_sign(c, issuer ? issuer->key.get() : out.key.get(), EVP_sha256());
  return out;
}

struct Row {
  const char* name;
  const char* root_eku;
  const char* sub_eku;
  const char* leaf_eku;
  ChainFault expected;
  int blamed_depth;  // element whose `problem` names the fault; -1 when none
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

class ChainUsage : public ::testing::TestWithParam<Row> {};

TEST_P(ChainUsage, EveryCertificateOfThePathRestricts) {
  const Row& row = GetParam();
  Issued root = make("Usage Root", nullptr, true, row.root_eku);
  Issued sub = make("Usage Sub CA", &root, true, row.sub_eku);
  Issued leaf = make("usage-user", &sub, false, row.leaf_eku);
  std::vector<X509Ptr> anchors;
  X509_up_ref(root.cert.get());
  anchors.emplace_back(root.cert.get());
  TrustOptions o;
  o.revocation = RevocationMode::Off;
  TrustStore trust(std::move(anchors), {}, {}, o);
  X509StackView presented(sk_X509_new_null());
  sk_X509_push(presented.get(), sub.cert.get());

  auto r = verify_chain(trust, leaf.cert.get(), presented.get(), std::nullopt, Detail::Full);
  EXPECT_EQ(r.fault, row.expected) << r.reason;
  ASSERT_EQ(r.elements.size(), 3u);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(r.elements[i].problem.empty(), i != row.blamed_depth) << i << ": " << r.elements[i].problem;
  if (row.blamed_depth > 0) {
    const std::string ca = row.blamed_depth == 1 ? "CN=Usage Sub CA" : "CN=Usage Root";
    EXPECT_NE(r.reason.find("chain certificate '" + ca + "'"), std::string::npos) << r.reason;
    EXPECT_NE(r.reason.find("'CN=usage-user' is not valid for client authentication"),
              std::string::npos) << r.reason;
  }
  if (row.expected == ChainFault::WrongUsage) {
    // What the server logs for it: 403.16 with CERT_E_WRONG_USAGE.
    auth::LocationPolicy policy;
    policy.ssl_flags.bits = auth::kSslRequireCert;
    auth::RequestEvidence ev;
    ev.over_tls = ev.cert_requested = ev.cert_presented = true;
    ev.chain = &r;
    const auto& answer = auth::decide(policy, ev).row();
    EXPECT_EQ(answer.status, 403);
    EXPECT_EQ(answer.substatus, 16);
    EXPECT_EQ(answer.win32, 0x800B0110u);
  }

  // usage_check = false: EKU restricts nothing anywhere in the path.
  std::vector<X509Ptr> again;
  X509_up_ref(root.cert.get());
  again.emplace_back(root.cert.get());
  o.usage_check = false;
  TrustStore lax(std::move(again), {}, {}, o);
  EXPECT_EQ(verify_chain(lax, leaf.cert.get(), presented.get()).fault, ChainFault::None);
}

INSTANTIATE_TEST_SUITE_P(
    Eku, ChainUsage,
    ::testing::Values(
        Row{"no_eku_anywhere", "", "", "", ChainFault::None, -1},
        Row{"client_auth_everywhere", "clientAuth", "clientAuth,serverAuth", "clientAuth",
            ChainFault::None, -1},
        Row{"sub_ca_server_auth_only", "", "serverAuth", "clientAuth", ChainFault::WrongUsage, 1},
        Row{"sub_ca_server_auth_leaf_without_eku", "", "serverAuth", "", ChainFault::WrongUsage, 1},
        Row{"sub_ca_any_eku", "", "anyExtendedKeyUsage", "clientAuth", ChainFault::None, -1},
        Row{"root_code_signing_only", "codeSigning", "", "clientAuth", ChainFault::WrongUsage, 2},
        Row{"leaf_and_sub_ca_both_wrong_names_the_leaf", "", "serverAuth", "serverAuth",
            ChainFault::WrongUsage, 0}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace certgate::pki
