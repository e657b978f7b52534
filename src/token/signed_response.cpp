#include "token/signed_response.hpp"

// Boost.JSON compiled into this one file (header-only mode): the only JSON the server reads.
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/src.hpp>
#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <memory>

namespace certgate::token {
namespace {

using CmsPtr = std::unique_ptr<CMS_ContentInfo, pki::Deleter<CMS_ContentInfo_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, pki::Deleter<EVP_MD_CTX_free>>;
using SigPtr = std::unique_ptr<ECDSA_SIG, pki::Deleter<ECDSA_SIG_free>>;

Parsed refuse(std::string why) {
  Parsed p;
  p.error = std::move(why);
  return p;
}

int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

// One PEM certificate, nothing before or after it but white space.
pki::X509Ptr pem_certificate(std::string_view pem) {
  pem = trim(pem);
  if (!pem.starts_with("-----BEGIN CERTIFICATE-----") || !pem.ends_with("-----END CERTIFICATE-----")) return nullptr;
  pki::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return pki::X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

struct Algorithm {
  std::string_view name;
  const EVP_MD* (*md)();
  int key_type;     // EVP_PKEY_EC / EVP_PKEY_RSA
  int curve;        // NID for EC, 0 for RSA
  bool pss;
};
constexpr Algorithm kAlgorithms[] = {
    {"ES256", EVP_sha256, EVP_PKEY_EC, NID_X9_62_prime256v1, false},
    {"ES384", EVP_sha384, EVP_PKEY_EC, NID_secp384r1, false},
    {"RS256", EVP_sha256, EVP_PKEY_RSA, 0, false},
    {"RS384", EVP_sha384, EVP_PKEY_RSA, 0, false},
    {"RS512", EVP_sha512, EVP_PKEY_RSA, 0, false},
    {"PS256", EVP_sha256, EVP_PKEY_RSA, 0, true},
    {"PS384", EVP_sha384, EVP_PKEY_RSA, 0, true},
    {"PS512", EVP_sha512, EVP_PKEY_RSA, 0, true},
};

int curve_of(EVP_PKEY* key) {
  char name[64];
  size_t len = 0;
  if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len)) return 0;
  return OBJ_txt2nid(name);
}

// WebCrypto gives ECDSA signatures as r||s (each the curve's size); OpenSSL wants DER.
std::string ecdsa_der(const std::string& raw, std::size_t coord) {
  if (raw.size() != 2 * coord) return raw;
  SigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(coord), nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data() + coord), static_cast<int>(coord), nullptr);
  if (!sig || !r || !s || !ECDSA_SIG_set0(sig.get(), r, s)) {
    BN_free(r);
    BN_free(s);
    return raw;
  }
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(sig.get(), &der);
  if (n <= 0) return raw;
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return out;
}

// A member named twice: Boost.JSON keeps the last, other parsers the first. Whatever a proxy or
// a log in front of certgate reads must be what certgate checks, so such a body is refused.
struct TopLevelKeys {
  static constexpr std::size_t max_array_size = -1;
  static constexpr std::size_t max_object_size = -1;
  static constexpr std::size_t max_string_size = -1;
  static constexpr std::size_t max_key_size = -1;
  int depth = 0;
  std::string key;
  std::vector<std::string> seen;
  bool duplicate = false;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_array_begin(boost::system::error_code&) { return ++depth, true; }
  bool on_array_end(std::size_t, boost::system::error_code&) { return --depth, true; }
  bool on_object_begin(boost::system::error_code&) { return ++depth, true; }
  bool on_object_end(std::size_t, boost::system::error_code&) { return --depth, true; }
  bool on_string_part(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    key.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    key.append(s.data(), s.size());
    if (depth == 1) {
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) duplicate = true;
      else seen.push_back(key);
    }
    key.clear();
    return true;
  }
  bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_uint64(std::uint64_t, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_double(double, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_bool(bool, boost::system::error_code&) { return true; }
  bool on_null(boost::system::error_code&) { return true; }
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }
};

bool has_duplicate_member(std::string_view body, const boost::json::parse_options& opt) {
  boost::json::basic_parser<TopLevelKeys> p(opt);
  boost::system::error_code ec;
  p.write_some(false, body.data(), body.size(), ec);
  return p.handler().duplicate;
}

Parsed parse_json(std::string_view body) {
  boost::json::parse_options opt;
  opt.max_depth = 4;
  if (has_duplicate_member(body, opt)) return refuse("a JSON member is given more than once");
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec, {}, opt);
  if (ec || !v.is_object()) return refuse("the body is not a JSON object");
  const auto& o = v.as_object();
  for (const auto& kv : o)
    if (kv.key() != "nonce" && kv.key() != "certificate_chain" && kv.key() != "algorithm" && kv.key() != "signature")
      return refuse("unknown JSON member \"" + std::string(kv.key().substr(0, 32)) + "\"");
  auto str = [&](const char* k) -> const boost::json::string* {
    auto it = o.find(k);
    return it != o.end() && it->value().is_string() ? &it->value().as_string() : nullptr;
  };
  const auto* nonce = str("nonce");
  const auto* alg_name = str("algorithm");
  const auto* signature = str("signature");
  auto chain_it = o.find("certificate_chain");
  if (!nonce || !alg_name || !signature || chain_it == o.end() || !chain_it->value().is_array())
    return refuse("the JSON form needs the strings nonce, algorithm, signature and the array certificate_chain");
  const auto& chain = chain_it->value().as_array();
  if (chain.empty() || chain.size() > kMaxChain)
    return refuse("certificate_chain must hold 1 to " + std::to_string(kMaxChain) + " certificates");
  Parsed p;
  p.response.nonce.assign(nonce->data(), nonce->size());
  if (!well_formed_nonce(p.response.nonce)) return refuse("the nonce is not a certgate nonce (43 base64url characters)");
  for (const auto& c : chain) {
    if (!c.is_string()) return refuse("certificate_chain must hold PEM strings");
    pki::X509Ptr cert = pem_certificate(std::string_view(c.as_string().data(), c.as_string().size()));
    if (!cert) return refuse("certificate_chain[" + std::to_string(p.response.certs.size()) + "] is not one PEM certificate");
    p.response.certs.push_back(std::move(cert));
  }
  const Algorithm* alg = nullptr;
  for (const auto& a : kAlgorithms)
    if (a.name == std::string_view(alg_name->data(), alg_name->size())) alg = &a;
  if (!alg) return refuse("algorithm must be one of ES256, ES384, RS256, RS384, RS512, PS256, PS384, PS512");
  p.response.form = "json " + std::string(alg->name);
  std::string sig;
  if (!decode_base64(std::string_view(signature->data(), signature->size()), sig) || sig.empty())
    return refuse("the signature is not base64");
  EVP_PKEY* key = X509_get0_pubkey(p.response.certs[0].get());
  if (!key) return refuse("the certificate's public key cannot be read");
  // The algorithm must be the key's own: an RSA key is never checked as ECDSA, nor a P-384 key
  // with SHA-256 (no confusion between what the client says and what the certificate holds).
  if (EVP_PKEY_get_base_id(key) != alg->key_type || (alg->curve && curve_of(key) != alg->curve))
    return refuse("algorithm " + std::string(alg->name) + " does not fit the certificate's key");
  if (alg->key_type == EVP_PKEY_EC) sig = ecdsa_der(sig, alg->curve == NID_secp384r1 ? 48 : 32);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, alg->md(), nullptr, key) != 1)
    return refuse("the signature cannot be checked with the certificate's key");
  if (alg->pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                   EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1))
    return refuse("the signature cannot be checked with the certificate's key");
  const int ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                                  reinterpret_cast<const unsigned char*>(p.response.nonce.data()), p.response.nonce.size());
  ERR_clear_error();
  if (ok != 1) {
    Parsed bad = refuse("the signature over the nonce is not made by the key of the certificate sent (" +
                        std::string(alg->name) + ")");
    bad.bad_signature = true;
    return bad;
  }
  p.ok = true;
  return p;
}

Parsed parse_cms(std::string_view body, std::string_view nonce) {
  if (!well_formed_nonce(nonce)) return refuse("the CMS form needs the challenge's nonce in the query (?nonce=...)");
  std::string der;
  // DER is binary: never trimmed (its last byte may well be a newline or a space).
  const bool binary = !body.empty() && static_cast<unsigned char>(body[0]) == 0x30;
  std::string_view t = binary ? body : trim(body);
  CmsPtr cms;
  if (!binary && t.starts_with("-----BEGIN")) {
    pki::BioPtr bio(BIO_new_mem_buf(t.data(), static_cast<int>(t.size())));
    if (bio) cms.reset(PEM_read_bio_CMS(bio.get(), nullptr, nullptr, nullptr));
  } else {
    if (!binary) {
      std::string text;
      for (char c : t)
        if (c != '\r' && c != '\n') text += c;
      if (!decode_base64(text, der)) return refuse("the body is neither DER, PEM nor base64 CMS");
      t = der;
    }
    const unsigned char* p = reinterpret_cast<const unsigned char*>(t.data());
    cms.reset(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(t.size())));
  }
  if (!cms) {
    ERR_clear_error();
    return refuse("the body is not a CMS / PKCS#7 structure");
  }
  if (OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed) return refuse("the CMS is not SignedData");
  if (!CMS_is_detached(cms.get())) return refuse("the CMS must be detached (openssl cms -sign without -nodetach)");
  STACK_OF(CMS_SignerInfo)* signers = CMS_get0_SignerInfos(cms.get());
  if (sk_CMS_SignerInfo_num(signers) != 1) return refuse("the CMS must hold exactly one signer");
  // The JSON form only knows SHA-2, and no TLS 1.3 handshake is signed with anything weaker:
  // an MD5 or SHA-1 CMS must not be the one way in that still takes them.
  X509_ALGOR* digest = nullptr;
  CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(signers, 0), nullptr, nullptr, &digest, nullptr);
  const ASN1_OBJECT* digest_oid = nullptr;
  if (digest) X509_ALGOR_get0(&digest_oid, nullptr, nullptr, digest);
  const int digest_nid = OBJ_obj2nid(digest_oid);
  if (digest_nid != NID_sha256 && digest_nid != NID_sha384 && digest_nid != NID_sha512)
    return refuse("the CMS signer's digest algorithm must be SHA-256, SHA-384 or SHA-512 (it is " +
                  std::string(digest_nid == NID_undef ? "unknown" : OBJ_nid2sn(digest_nid)) + ")");
  pki::X509StackPtr certs(CMS_get1_certs(cms.get()));
  if (!certs || sk_X509_num(certs.get()) < 1) return refuse("the CMS carries no certificate");
  if (sk_X509_num(certs.get()) > static_cast<int>(kMaxChain))
    return refuse("the CMS carries more than " + std::to_string(kMaxChain) + " certificates");
  pki::BioPtr content(BIO_new_mem_buf(nonce.data(), static_cast<int>(nonce.size())));
  // Only the signature is checked here; the chain goes through the site's pipeline.
  const unsigned flags = CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY | CMS_NOCRL;
  if (!content || CMS_verify(cms.get(), nullptr, nullptr, content.get(), nullptr, flags) != 1) {
    ERR_clear_error();
    Parsed bad = refuse("the CMS signature over the nonce does not verify with the signer's certificate");
    bad.bad_signature = true;
    return bad;
  }
  pki::X509StackView signer(CMS_get0_signers(cms.get()));
  if (!signer || sk_X509_num(signer.get()) != 1) return refuse("the CMS signer's certificate is not in the CMS");
  X509* leaf = sk_X509_value(signer.get(), 0);
  Parsed p;
  p.response.nonce.assign(nonce);
  p.response.form = "cms";
  X509_up_ref(leaf);
  p.response.certs.emplace_back(leaf);
  for (int i = 0; i < sk_X509_num(certs.get()); ++i) {
    X509* c = sk_X509_value(certs.get(), i);
    if (X509_cmp(c, leaf) == 0) continue;
    X509_up_ref(c);
    p.response.certs.emplace_back(c);
  }
  p.ok = true;
  return p;
}

}  // namespace

std::string base64url(const unsigned char* data, std::size_t n) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 2 < n; i += 3) {
    const unsigned v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == n) {
    const unsigned v = data[i] << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
  } else if (i + 2 == n) {
    const unsigned v = (data[i] << 16) | (data[i + 1] << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

bool decode_base64(std::string_view in, std::string& out) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return false;
  out.clear();
  out.reserve(in.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    const int v = b64_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return true;
}

std::string_view query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name && pair[name.size()] == '=')
      return pair.substr(name.size() + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

std::string make_nonce() {
  unsigned char bytes[kNonceBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return {};
  return base64url(bytes, sizeof bytes);
}

bool well_formed_nonce(std::string_view nonce) {
  if (nonce.size() != kNonceChars) return false;
  for (unsigned char c : nonce)
    if (b64_value(c) < 0 || c == '+' || c == '/') return false;
  return true;
}

Parsed parse_and_verify(std::string_view body, std::string_view content_type, std::string_view query_nonce) {
  std::string type(trim(content_type.substr(0, content_type.find(';'))));
  for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (type == "application/json") return parse_json(body);
  // Only types an HTML form cannot send and a cross-site fetch cannot send without a CORS
  // preflight (which certgate never grants): another site's page cannot post the attacker's own
  // signed response and log its visitor in as the attacker (login CSRF).
  if (type == "application/pkcs7-signature" || type == "application/pkcs7-mime" || type == "application/cms" ||
      type == "application/octet-stream")
    return parse_cms(body, query_nonce);
  return refuse("the Content-Type must be application/json or application/pkcs7-signature (also pkcs7-mime, cms, "
                "octet-stream for the CMS form); \"" + type.substr(0, 64) + "\" is what an HTML form sends");
}

}  // namespace certgate::token
