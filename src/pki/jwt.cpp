#include "pki/jwt.hpp"

#include "pki/load.hpp"
#include "pki/x509_text.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>

#include <fmt/format.h>

namespace certgate::pki {

std::string base64url(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (auto& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
    else if (c < 0x20) out += fmt::format("\\u{:04x}", c);
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

namespace {

std::string sha256(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), n);
}

std::string bn_bytes(const BIGNUM* bn, int width) {
  std::string out(static_cast<std::size_t>(width), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), width);
  return out;
}

}  // namespace

JwtSigner::JwtSigner(const std::filesystem::path& file) {
  std::string bytes = read_file(file);
  BioPtr bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
  key_.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key_) throw LoadError(file.string() + ": no unencrypted PEM private key (" + openssl_errors() + ")");
  std::string jwk_core;  // RFC 7638: the required members in lexicographic order
  if (EVP_PKEY_is_a(key_.get(), "ED25519")) {
    alg_ = "EdDSA";
    std::string pub(32, '\0');
    std::size_t len = pub.size();
    EVP_PKEY_get_raw_public_key(key_.get(), reinterpret_cast<unsigned char*>(pub.data()), &len);
    jwk_core = R"({"crv":"Ed25519","kty":"OKP","x":")" + base64url(pub) + "\"}";
  } else if (EVP_PKEY_is_a(key_.get(), "EC")) {
    char group[64] = {};
    std::size_t glen = 0;
    EVP_PKEY_get_utf8_string_param(key_.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen);
    if (std::string(group) != "prime256v1")
      throw LoadError(file.string() + ": EC key on " + group + "; the assertion needs P-256 (prime256v1) or Ed25519");
    alg_ = "ES256";
    BIGNUM *x = nullptr, *y = nullptr;
    EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x);
    EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y);
    jwk_core = R"({"crv":"P-256","kty":"EC","x":")" + base64url(bn_bytes(x, 32)) + R"(","y":")" +
               base64url(bn_bytes(y, 32)) + "\"}";
    BN_free(x);
    BN_free(y);
  } else {
    throw LoadError(file.string() + ": the assertion key must be EC P-256 or Ed25519");
  }
  kid_ = base64url(sha256(jwk_core));
  jwks_ = R"({"keys":[)" + jwk_core.substr(0, jwk_core.size() - 1) + R"(,"alg":")" + alg_ +
          R"(","use":"sig","kid":")" + kid_ + "\"}]}";
}

std::string JwtSigner::sign(const Claims& c) const {
  std::string header = R"({"alg":")" + alg_ + R"(","typ":"JWT","kid":")" + kid_ + "\"}";
  std::string groups;
  for (const auto& g : c.groups) groups += (groups.empty() ? "" : ",") + json_string(g);
  std::string payload = "{\"iss\":" + json_string(c.issuer) + ",\"sub\":" + json_string(c.subject) +
                        (c.audience.empty() ? "" : ",\"aud\":" + json_string(c.audience)) +
                        ",\"amr\":[" + json_string(c.auth_method) + "],\"groups\":[" + groups + "]" +
                        (c.cert_thumbprint.empty() ? "" : ",\"cnf\":{\"x5t#S256\":" + json_string(c.cert_thumbprint) + "}") +
                        ",\"iat\":" + std::to_string(c.issued_at) + ",\"exp\":" + std::to_string(c.expires) + "}";
  std::string input = base64url(header) + "." + base64url(payload);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const EVP_MD* md = alg_ == "ES256" ? EVP_sha256() : nullptr;  // EdDSA hashes internally
  std::size_t len = 0;
  std::string sig;
  if (EVP_DigestSignInit(ctx, nullptr, md, nullptr, key_.get()) == 1 &&
      EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1) {
    sig.resize(len);
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (alg_ == "ES256") {  // JWS wants r||s, 32 bytes each, not DER
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (!es) return "";
    sig = bn_bytes(ECDSA_SIG_get0_r(es), 32) + bn_bytes(ECDSA_SIG_get0_s(es), 32);
    ECDSA_SIG_free(es);
  }
  return input + "." + base64url(sig);
}

}  // namespace certgate::pki
