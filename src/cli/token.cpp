// `certgate token sign`: the client side of the token login (docs/token-login.md). The key is
// used through OpenSSL's PKCS#11 engine (Debian's libengine-pkcs11-openssl, libp11): OpenSSL
// asks the token to sign and never sees the private key.
#define OPENSSL_SUPPRESS_DEPRECATED  // ENGINE: the pkcs11 provider is not in Debian 12
#include "cli/commands.hpp"
#include "pki/openssl_ptr.hpp"
#include "token/signed_response.hpp"

#include <curl/curl.h>
#include <openssl/cms.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <fstream>
#include <iostream>
#include <memory>

namespace certgate::cli {
namespace {

constexpr std::size_t kMaxAnswer = 64 << 10;

struct EngineFree {
  void operator()(ENGINE* e) const {
    ENGINE_finish(e);
    ENGINE_free(e);
  }
};
using EnginePtr = std::unique_ptr<ENGINE, EngineFree>;
using CmsPtr = std::unique_ptr<CMS_ContentInfo, pki::Deleter<CMS_ContentInfo_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, pki::Deleter<EVP_MD_CTX_free>>;

int fail(const std::string& what) {
  std::cerr << "certgate token sign: " << what;
  if (unsigned long e = ERR_peek_last_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    std::cerr << " (" << buf << ")";
  }
  std::cerr << "\n";
  return kRejected;
}

// RFC 7512 PKCS#11 URI attribute values: everything but unreserved characters percent-encoded.
std::string uri_escape(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') out += static_cast<char>(c);
    else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

struct HttpAnswer {
  long status = 0;
  std::string body;
  std::string set_cookie;  // the first Set-Cookie's "name=value"
  std::string error;
};

std::size_t on_body(char* p, std::size_t size, std::size_t n, void* user) {
  auto* a = static_cast<HttpAnswer*>(user);
  if (a->body.size() + size * n > kMaxAnswer) return 0;
  a->body.append(p, size * n);
  return size * n;
}
std::size_t on_header(char* p, std::size_t size, std::size_t n, void* user) {
  auto* a = static_cast<HttpAnswer*>(user);
  std::string_view line(p, size * n);
  constexpr std::string_view kName = "set-cookie:";
  if (a->set_cookie.empty() && line.size() > kName.size()) {
    std::string head(line.substr(0, kName.size()));
    for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (head == kName) {
      std::string_view v = line.substr(kName.size());
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      a->set_cookie = std::string(v.substr(0, v.find_first_of(";\r\n")));
    }
  }
  return size * n;
}

HttpAnswer http(const std::string& url, const std::string& cacert, const std::string* post, const std::string& type) {
  HttpAnswer a;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), curl_easy_cleanup);
  if (!c) {
    a.error = "libcurl cannot start";
    return a;
  }
  curl_slist* headers = nullptr;
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &a);
  curl_easy_setopt(c.get(), CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c.get(), CURLOPT_HEADERDATA, &a);
  if (!cacert.empty()) curl_easy_setopt(c.get(), CURLOPT_CAINFO, cacert.c_str());
  const std::string content_type = "Content-Type: " + type;
  if (post) {
    headers = curl_slist_append(headers, content_type.c_str());
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, post->data());
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(post->size()));
  }
  const CURLcode rc = curl_easy_perform(c.get());
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) a.error = curl_easy_strerror(rc);
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &a.status);
  return a;
}

// "nonce":"..." out of the challenge (our own server's fixed form).
std::string nonce_of(const std::string& body) {
  constexpr std::string_view kKey = "\"nonce\":\"";
  const auto at = body.find(kKey);
  if (at == std::string::npos) return {};
  const auto end = body.find('"', at + kKey.size());
  if (end == std::string::npos) return {};
  std::string n = body.substr(at + kKey.size(), end - at - kKey.size());
  return token::well_formed_nonce(n) ? n : std::string();
}

std::string pem_of(X509* cert) {
  pki::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

int token_sign(const TokenSignArgs& args) {
  std::string pin;
  {
    std::ifstream in(args.pin_file);
    if (!in || !std::getline(in, pin)) {
      std::cerr << "certgate token sign: cannot read a PIN from " << args.pin_file << "\n";
      return kUsage;
    }
    while (!pin.empty() && (pin.back() == '\r' || pin.back() == '\n')) pin.pop_back();
  }
  const std::string suffix = "/challenge";
  if (args.challenge_url.size() <= suffix.size() || !args.challenge_url.ends_with(suffix)) {
    std::cerr << "certgate token sign: --challenge-url must end in /challenge (e.g. "
                 "https://host/.certgate/token/challenge)\n";
    return kUsage;
  }
  std::vector<pki::X509Ptr> extra;
  for (const auto& file : args.chain) {
    pki::BioPtr bio(BIO_new_file(file.c_str(), "r"));
    while (bio) {
      pki::X509Ptr c(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
      if (!c) break;
      extra.push_back(std::move(c));
    }
    ERR_clear_error();
    if (!bio) {
      std::cerr << "certgate token sign: cannot read " << file << "\n";
      return kUsage;
    }
  }

  ENGINE_load_dynamic();
  EnginePtr engine(ENGINE_by_id("pkcs11"));
  if (!engine) return fail("OpenSSL's pkcs11 engine is not installed (Debian: libengine-pkcs11-openssl)");
  if (!ENGINE_ctrl_cmd_string(engine.get(), "MODULE_PATH", args.pkcs11_module.c_str(), 0) ||
      !ENGINE_init(engine.get()))
    return fail("cannot load the PKCS#11 module " + args.pkcs11_module);
  if (!ENGINE_ctrl_cmd_string(engine.get(), "PIN", pin.c_str(), 0)) return fail("the engine refused the PIN");
  std::fill(pin.begin(), pin.end(), '\0');
  std::string uri = "pkcs11:token=" + uri_escape(args.token_label);
  if (!args.key_label.empty()) uri += ";object=" + uri_escape(args.key_label);
  pki::EvpPkeyPtr key(ENGINE_load_private_key(engine.get(), (uri + ";type=private").c_str(), nullptr, nullptr));
  if (!key) return fail("no private key at " + uri + " (wrong token label, key label or PIN?)");
  struct {
    const char* id;
    X509* cert;
  } load{nullptr, nullptr};
  const std::string cert_uri = uri + ";type=cert";
  load.id = cert_uri.c_str();
  if (!ENGINE_ctrl_cmd(engine.get(), "LOAD_CERT_CTRL", 0, &load, nullptr, 0) || !load.cert)
    return fail("no certificate at " + uri + " (store the certificate on the token beside its key)");
  pki::X509Ptr cert(load.cert);
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    // A token key cannot be compared by OpenSSL this way; the public halves must match.
    if (EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key.get()) != 1)
      return fail("the certificate on the token is not the key's");
  }
  ERR_clear_error();

  HttpAnswer challenge = http(args.challenge_url, args.cacert, nullptr, "");
  if (!challenge.error.empty() || challenge.status != 200) {
    std::cerr << "certgate token sign: the challenge failed: "
              << (challenge.error.empty() ? "HTTP " + std::to_string(challenge.status) : challenge.error) << "\n"
              << challenge.body << "\n";
    return kRejected;
  }
  const std::string nonce = nonce_of(challenge.body);
  if (nonce.empty()) return fail("the challenge carries no nonce: " + challenge.body.substr(0, 200));

  std::string body, type, url = args.challenge_url.substr(0, args.challenge_url.size() - suffix.size()) + "/response";
  if (args.form == "cms") {
    pki::BioPtr data(BIO_new_mem_buf(nonce.data(), static_cast<int>(nonce.size())));
    pki::X509StackPtr certs(sk_X509_new_null());
    for (auto& c : extra) {
      X509_up_ref(c.get());
      sk_X509_push(certs.get(), c.get());
    }
    CmsPtr cms(CMS_sign(cert.get(), key.get(), certs.get(), data.get(), CMS_DETACHED | CMS_BINARY));
    if (!cms) return fail("the token could not sign the nonce (CMS)");
    unsigned char* der = nullptr;
    const int n = i2d_CMS_ContentInfo(cms.get(), &der);
    if (n <= 0) return fail("cannot encode the CMS");
    body.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
    type = "application/pkcs7-signature";
    url += "?nonce=" + nonce;
  } else {
    const bool ec = EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_EC;
    const int bits = EVP_PKEY_get_bits(key.get());
    const EVP_MD* md = ec && bits > 256 ? EVP_sha384() : EVP_sha256();
    const std::string alg = ec ? (bits > 256 ? "ES384" : "ES256") : "RS256";
    MdCtxPtr ctx(EVP_MD_CTX_new());
    std::size_t len = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(nonce.data()), nonce.size()) != 1)
      return fail("the token could not sign the nonce");
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(nonce.data()), nonce.size()) != 1)
      return fail("the token could not sign the nonce");
    sig.resize(len);
    body = "{\"nonce\":\"" + nonce + "\",\"algorithm\":\"" + alg + "\",\"signature\":\"" +
           token::base64url(reinterpret_cast<const unsigned char*>(sig.data()), sig.size()) +
           "\",\"certificate_chain\":[" + token::json_string(pem_of(cert.get()));
    for (auto& c : extra) body += "," + token::json_string(pem_of(c.get()));
    body += "]}";
    type = "application/json";
  }
  if (args.print_response) {
    std::cout << url << "\n" << type << "\n" << token::base64url(reinterpret_cast<const unsigned char*>(body.data()), body.size()) << "\n";
    return kOk;
  }
  HttpAnswer login = http(url, args.cacert, &body, type);
  if (!login.error.empty() || login.status != 200 || login.set_cookie.empty()) {
    std::cerr << "certgate token sign: the login was refused: "
              << (login.error.empty() ? "HTTP " + std::to_string(login.status) : login.error) << "\n"
              << login.body << "\n";
    return kRejected;
  }
  std::cout << login.set_cookie << "\n";
  return kOk;
}

}  // namespace certgate::cli
