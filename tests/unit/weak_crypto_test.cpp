// Weak keys and digests, profile checks and path length (issue 13 items 17, 18): the
// X509_V_ERR → ChainFault table, the fault → verdict mapping of the pure core, and the
// settings' bad values.
#include "auth/decide.hpp"
#include "config/config.hpp"
#include "pki/chain_verify.hpp"
#include "test_util.hpp"

#include <openssl/x509_vfy.h>

#include <gtest/gtest.h>

namespace certgate {
namespace {

using auth::ChainFault;

struct CodeRow {
  int code;
  ChainFault fault;
};

void PrintTo(const CodeRow& r, std::ostream* os) { *os << X509_verify_cert_error_string(r.code); }

class VerifyErrorTable : public ::testing::TestWithParam<CodeRow> {};

TEST_P(VerifyErrorTable, ClassifiesTheCode) {
  EXPECT_EQ(pki::classify_verify_error(GetParam().code), GetParam().fault);
}

INSTANTIATE_TEST_SUITE_P(
    Codes, VerifyErrorTable,
    ::testing::Values(
        // Security level 2 (min_rsa_bits, allow_sha1): a weakness, not a broken signature.
        CodeRow{X509_V_ERR_EE_KEY_TOO_SMALL, ChainFault::WeakCrypto},
        CodeRow{X509_V_ERR_CA_KEY_TOO_SMALL, ChainFault::WeakCrypto},
        CodeRow{X509_V_ERR_CA_MD_TOO_WEAK, ChainFault::WeakCrypto},
        CodeRow{X509_V_ERR_CERT_SIGNATURE_FAILURE, ChainFault::BadSignature},
        // max_chain_depth and the X509_V_FLAG_X509_STRICT profile checks: constraint faults.
        CodeRow{X509_V_ERR_CERT_CHAIN_TOO_LONG, ChainFault::Constraint},
        CodeRow{X509_V_ERR_MISSING_AUTHORITY_KEY_IDENTIFIER, ChainFault::Constraint},
        CodeRow{X509_V_ERR_MISSING_SUBJECT_KEY_IDENTIFIER, ChainFault::Constraint},
        CodeRow{X509_V_ERR_CA_BCONS_NOT_CRITICAL, ChainFault::Constraint},
        CodeRow{X509_V_ERR_KU_KEY_CERT_SIGN_INVALID_FOR_NON_CA, ChainFault::Constraint},
        CodeRow{X509_V_ERR_EMPTY_SUBJECT_SAN_NOT_CRITICAL, ChainFault::Constraint},
        CodeRow{X509_V_ERR_SUBJECT_NAME_EMPTY, ChainFault::Constraint},
        CodeRow{X509_V_ERR_CA_CERT_MISSING_KEY_USAGE, ChainFault::Constraint},
        CodeRow{X509_V_ERR_PATHLEN_INVALID_FOR_NON_CA, ChainFault::Constraint},
        CodeRow{X509_V_ERR_EC_KEY_EXPLICIT_PARAMS, ChainFault::Constraint},
        // A code a newer OpenSSL adds is still a deny.
        CodeRow{4242, ChainFault::Constraint}));

struct FaultRow {
  ChainFault fault;
  int status;
  int substatus;
  std::uint32_t win32;
};

void PrintTo(const FaultRow& r, std::ostream* os) { *os << auth::to_string(r.fault); }

class FaultVerdict : public ::testing::TestWithParam<FaultRow> {};

TEST_P(FaultVerdict, GivesStatusSubstatusAndWin32) {
  const FaultRow& row = GetParam();
  auth::ChainReport report{row.fault, "why", {}};
  auth::LocationPolicy policy{auth::SslFlags{auth::kSslNegotiateCert}, true};
  auth::RequestEvidence ev{true, 256, true, true, &report};
  auto o = auth::stage_chain(policy, ev);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->row().status, row.status);
  EXPECT_EQ(o->row().substatus, row.substatus);
  EXPECT_EQ(o->row().win32, row.win32);
  EXPECT_EQ(o->reason, "why");
}

// Windows reports a weak signature or key as TRUST_E_CERT_SIGNATURE (CERT_TRUST_HAS_WEAK_SIGNATURE
// with CERT_TRUST_IS_NOT_SIGNATURE_VALID), and a profile or length violation as "other".
INSTANTIATE_TEST_SUITE_P(Faults, FaultVerdict,
                         ::testing::Values(FaultRow{ChainFault::WeakCrypto, 403, 16, 0x80096004u},
                                           FaultRow{ChainFault::Constraint, 403, 16, 0x80096004u},
                                           FaultRow{ChainFault::BadSignature, 403, 16, 0x80096004u}));

TEST(WeakCrypto, FaultHasAStableName) {
  EXPECT_EQ(auth::to_string(ChainFault::WeakCrypto), "weak-crypto");
}

std::string config_error(const std::string& client_certificates) {
  return test::config_error("\n[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = "
                            "\"127.0.0.1:8443\"\ncertificate = \"server.pem\"\n"
                            "[sites.client_certificates]\n" + client_certificates);
}

TEST(WeakCryptoConfig, DefaultsAreSecurityLevelTwoStrictDepthEight) {
  config::ClientCertificates cc;
  EXPECT_EQ(cc.min_rsa_bits, 2048u);
  EXPECT_FALSE(cc.allow_sha1);
  EXPECT_TRUE(cc.x509_strict);
  EXPECT_EQ(cc.max_chain_depth, 8u);
}

TEST(WeakCryptoConfig, WeakeningSettingsLoadWithAWarningEach) {
  test::TempDir dir;
  auto file = dir.write("c.toml", "\n[[sites]]\nname = \"A\"\n[[sites.bindings]]\nlisten = "
                                  "\"127.0.0.1:8443\"\ncertificate = \"server.pem\"\n"
                                  "[sites.client_certificates]\nmin_rsa_bits = 1024\n"
                                  "allow_sha1 = true\nx509_strict = false\n");
  auto cfg = config::load(file);
  ASSERT_EQ(cfg.warnings.size(), 3u);
  EXPECT_NE(cfg.warnings[0].find("min_rsa_bits = 1024 weakens the site"), std::string::npos) << cfg.warnings[0];
  EXPECT_NE(cfg.warnings[1].find("allow_sha1 = true weakens the site"), std::string::npos) << cfg.warnings[1];
  EXPECT_NE(cfg.warnings[2].find("x509_strict = false weakens the site"), std::string::npos) << cfg.warnings[2];
  EXPECT_EQ(cfg.sites[0].client_certificates.min_rsa_bits, 1024u);
  EXPECT_TRUE(cfg.sites[0].client_certificates.allow_sha1);
  EXPECT_FALSE(cfg.sites[0].client_certificates.x509_strict);
}

TEST(WeakCryptoConfig, BadValuesNameLineColumnAndKey) {
  EXPECT_EQ(config_error("min_rsa_bits = 512\n"),
            "c.toml:8:16: sites[0].client_certificates.min_rsa_bits: must be between 1024 and 16384");
  EXPECT_NE(config_error("allow_sha1 = \"yes\"\n").find("allow_sha1"), std::string::npos);
  EXPECT_NE(config_error("x509_strict = 1\n").find("x509_strict"), std::string::npos);
  EXPECT_NE(config_error("max_chain_depth = 65\n").find("max_chain_depth: must be between 0 and 64"),
            std::string::npos);
  EXPECT_EQ(config_error("min_rsa_bits = 1024\nallow_sha1 = true\nx509_strict = false\n"
                         "max_chain_depth = 2\n"),
            "");
}

TEST(CiphersConfig, DefaultLeavesOutStaticRsaAndEmptyIsRefused) {
  EXPECT_EQ(config::ServerSettings{}.ciphers, "DEFAULT:!kRSA");
  test::TempDir dir;
  auto file = dir.write("c.toml", "[server]\nciphers = \"\"\n\n[[sites]]\nname = \"A\"\n"
                                  "[[sites.bindings]]\nlisten = \"127.0.0.1:8443\"\ncertificate = \"s.pem\"\n");
  try {
    config::load(file);
    ADD_FAILURE() << "an empty cipher list loaded";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.toml:2:11: server.ciphers: must not be empty"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace certgate
