// The signed assertion: both algorithms verify with the key the JWKS publishes; tampering fails.
#include "pki/jwt.hpp"
#include "pki/load.hpp"
#include "test_util.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>

#include <gtest/gtest.h>

namespace certgate::pki {
namespace {

std::string unb64url(std::string s) {
  for (auto& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (s.size() % 4) s += '=';
  std::string out(s.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n) - (s.size() - s.find_last_not_of('=') - 1));
  return out;
}

bool verify(const std::string& token, EVP_PKEY* pub, bool es256) {
  auto dot2 = token.rfind('.');
  std::string input = token.substr(0, dot2), sig = unb64url(token.substr(dot2 + 1));
  if (es256) {
    if (sig.size() != 64) return false;
    ECDSA_SIG* es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 32, nullptr),
                   BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr));
    unsigned char* der = nullptr;
    int n = i2d_ECDSA_SIG(es, &der);
    sig.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, es256 ? EVP_sha256() : nullptr, nullptr, pub) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

void check(EVP_PKEY* key, const std::string& alg) {
  test::TempDir dir;
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  auto file = dir.write("key.pem", std::string(data, static_cast<std::size_t>(n)));
  BIO_free(bio);
  JwtSigner signer(file);
  EXPECT_EQ(signer.alg(), alg);
  EXPECT_NE(signer.jwks().find("\"alg\":\"" + alg + "\""), std::string::npos);
  EXPECT_NE(signer.jwks().find("\"kid\":\"" + signer.kid() + "\""), std::string::npos);
  Claims c{"certgate", "app", "azureuser", "Certificate", "ab12", {"admins"}, 100, 160};
  std::string token = signer.sign(c);
  EXPECT_TRUE(verify(token, key, alg == "ES256")) << token;
  std::string payload = unb64url(token.substr(token.find('.') + 1, token.rfind('.') - token.find('.') - 1));
  EXPECT_EQ(payload, R"({"iss":"certgate","sub":"azureuser","aud":"app","amr":["Certificate"],"groups":["admins"],"cnf":{"x5t#S256":"ab12"},"iat":100,"exp":160})");
  std::string tampered = token;
  tampered[token.find('.') + 5] ^= 1;
  EXPECT_FALSE(verify(tampered, key, alg == "ES256"));
}

TEST(Jwt, Es256) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  check(key, "ES256");
  EVP_PKEY_free(key);
}

TEST(Jwt, EdDsa) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  check(key, "EdDSA");
  EVP_PKEY_free(key);
}

TEST(Jwt, OtherKeysAreRefused) {
  test::TempDir dir;
  EXPECT_THROW(JwtSigner(dir.write("x.pem", "not a key")), LoadError);
  EVP_PKEY* rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, rsa, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  auto file = dir.write("rsa.pem", std::string(data, static_cast<std::size_t>(n)));
  BIO_free(bio);
  EVP_PKEY_free(rsa);
  EXPECT_THROW(JwtSigner{file}, LoadError);
}

}  // namespace
}  // namespace certgate::pki
