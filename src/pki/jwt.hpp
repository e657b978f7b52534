#pragma once
// The signed identity assertion a backend can verify without trusting the network: a short JWT
// (ES256 with an EC P-256 key, or EdDSA with Ed25519) and the JWKS that publishes its key.
#include "pki/openssl_ptr.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace certgate::pki {

struct Claims {
  std::string issuer, audience, subject, auth_method, cert_thumbprint;  // thumbprint: SHA-256 hex
  std::vector<std::string> groups;
  std::int64_t issued_at = 0, expires = 0;
};

class JwtSigner {
 public:
  // Throws LoadError when the file holds no EC P-256 or Ed25519 private key.
  explicit JwtSigner(const std::filesystem::path& key_file);
  std::string sign(const Claims& claims) const;
  const std::string& jwks() const { return jwks_; }  // {"keys":[...]} with kid, alg, use
  const std::string& kid() const { return kid_; }
  const std::string& alg() const { return alg_; }

 private:
  EvpPkeyPtr key_;
  std::string alg_, kid_, jwks_;
};

std::string base64url(const std::string& bytes);
std::string json_string(const std::string& s);

}  // namespace certgate::pki
