#include "http/admin_access.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <stdexcept>

namespace certgate::http {

AdminAccess::AdminAccess(const config::ServerSettings& s) {
  for (const auto& text : s.admin_allow)
    if (auto b = net::Cidr::parse(text)) blocks_.push_back(*b);  // checked at load
}

bool AdminAccess::allows(const boost::asio::ip::address& peer) const {
  return net::any_contains(blocks_, peer);
}

std::unique_ptr<boost::asio::ssl::context> admin_tls_context(const config::ServerSettings& s) {
  namespace ssl = boost::asio::ssl;
  if (s.admin_client_cas.empty()) return nullptr;
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  auto fail = [](const std::string& what, const std::filesystem::path& file) {
    throw std::runtime_error("[server] " + what + " " + file.string() + ": cannot be used");
  };
  if (SSL_CTX_use_certificate_chain_file(native, s.admin_certificate.c_str()) != 1) fail("admin_certificate", s.admin_certificate);
  const auto& key = s.admin_key.empty() ? s.admin_certificate : s.admin_key;
  if (SSL_CTX_use_PrivateKey_file(native, key.c_str(), SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(native) != 1)
    fail(s.admin_key.empty() ? "admin_certificate (its key)" : "admin_key", key);
  STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
  for (const auto& ca : s.admin_client_cas) {
    if (SSL_CTX_load_verify_locations(native, ca.c_str(), nullptr) != 1 ||
        SSL_add_file_cert_subjects_to_stack(names, ca.c_str()) != 1) {
      sk_X509_NAME_pop_free(names, X509_NAME_free);
      fail("admin_client_cas", ca);
    }
  }
  SSL_CTX_set_client_CA_list(native, names);
  // No certificate, or one these CAs did not issue: the handshake fails, nothing is answered.
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return ctx;
}

}  // namespace certgate::http
