#include "http/admin_access.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace certgate::http {

AdminAccess::AdminAccess(const config::ServerSettings& s) {
  for (const auto& text : s.admin_allow)
    if (auto b = net::Cidr::parse(text)) blocks_.push_back(*b);  // checked at load
}

bool AdminAccess::allows(const boost::asio::ip::address& peer) const {
  return net::any_contains(blocks_, peer);
}

bool admin_host_allowed(std::string_view host, const config::ServerSettings& s) {
  if (host.empty()) return true;
  std::string_view name = host;
  if (name.front() == '[') {
    const auto close = name.find(']');
    if (close == std::string_view::npos) return false;
    boost::system::error_code ec;
    boost::asio::ip::make_address_v6(name.substr(1, close - 1), ec);
    return !ec;
  }
  if (const auto colon = name.rfind(':'); colon != std::string_view::npos) name = name.substr(0, colon);
  if (name.empty()) return false;
  boost::system::error_code ec;
  boost::asio::ip::make_address_v4(name, ec);
  if (!ec) return true;
  const auto iequal = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
  };
  if (iequal(name, "localhost") ||
      (name.size() > 10 && iequal(name.substr(name.size() - 10), ".localhost")))
    return true;
  return std::any_of(s.admin_hosts.begin(), s.admin_hosts.end(), [&](const std::string& h) { return iequal(name, h); });
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
