#include "pki/cert_facts.hpp"

#include "pki/x509_text.hpp"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>


namespace certgate::pki {
namespace {

std::string asn1_text(const ASN1_STRING* s) {
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

// Windows' CertNameToStr quoting: a value with a separator or edge spaces is put in quotes.
std::string x500_value(const std::string& v) {
  bool quote = v.empty() || v.front() == ' ' || v.back() == ' ' ||
               v.find_first_of(",+=\"<>#;\n") != std::string::npos;
  if (!quote) return v;
  std::string out = "\"";
  for (char c : v) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// "DC=com,DC=corp,CN=Corp CA": encoding order, as altSecurityIdentities writes names.
std::string x500_text(const X509_NAME* name, const std::vector<auth::NameAttr>& attrs) {
  std::string out;
  int last_set = -1;
  for (int i = 0; name && i < X509_NAME_entry_count(name); ++i) {
    const int set = X509_NAME_ENTRY_set(X509_NAME_get_entry(name, i));
    if (i > 0) out += set == last_set ? "+" : ",";
    last_set = set;
    out += attrs[static_cast<std::size_t>(i)].label + "=" + x500_value(attrs[static_cast<std::size_t>(i)].value);
  }
  return out;
}

constexpr std::string_view kSidUriPrefix = "tag:microsoft.com,2022-09-14:sid:";

// szOID_NTDS_CA_SECURITY_EXT: GeneralNames holding otherName 1.3.6.1.4.1.311.25.2.1 whose
// value is the account SID as text in an OCTET STRING.
void read_sid_extension(X509* cert, std::vector<std::string>& sids) {
  ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.4.1.311.25.2", 1);
  const int at = oid ? X509_get_ext_by_OBJ(cert, oid, -1) : -1;
  ASN1_OBJECT_free(oid);
  if (at < 0) return;
  const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext(cert, at));
  const unsigned char* p = ASN1_STRING_get0_data(data);
  GENERAL_NAMES* names = d2i_GENERAL_NAMES(nullptr, &p, ASN1_STRING_length(data));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type != GEN_OTHERNAME) continue;
    char type[64];
    OBJ_obj2txt(type, sizeof type, gn->d.otherName->type_id, 1);
    const ASN1_TYPE* v = gn->d.otherName->value;
    if (std::string(type) == "1.3.6.1.4.1.311.25.2.1" && v && v->type == V_ASN1_OCTET_STRING)
      sids.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v->value.octet_string)),
                        static_cast<std::size_t>(ASN1_STRING_length(v->value.octet_string)));
  }
  GENERAL_NAMES_free(names);
}

}  // namespace

std::vector<auth::NameAttr> name_attrs(const X509_NAME* name) {
  std::vector<auth::NameAttr> out;
  for (int i = 0; name && i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    const ASN1_OBJECT* obj = X509_NAME_ENTRY_get_object(e);
    std::string label;
    if (int nid = OBJ_obj2nid(obj); nid != NID_undef) label = auth::canonical_label(OBJ_nid2sn(nid));
    if (label.empty()) {
      char oid[80];
      OBJ_obj2txt(oid, sizeof oid, obj, 1);
      label = oid;
    }
    out.push_back({std::move(label), asn1_text(X509_NAME_ENTRY_get_data(e))});
  }
  return out;
}

auth::CertFacts cert_facts(X509* cert) {
  auth::CertFacts f;
  if (cert == nullptr) return f;
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len > 0) {
    f.der_sha256 = digest_hex(sha256_md(), {reinterpret_cast<char*>(der), static_cast<std::size_t>(len)});
    f.sha1_thumbprint = digest_hex(sha1_md(), {reinterpret_cast<char*>(der), static_cast<std::size_t>(len)}, true);
    OPENSSL_free(der);
  }
  unsigned char* spki = nullptr;
  int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &spki);
  if (spki_len > 0) {
    f.spki_sha256 = digest_hex(sha256_md(), {reinterpret_cast<char*>(spki), static_cast<std::size_t>(spki_len)});
    OPENSSL_free(spki);
  }
  f.serial_hex = serial_hex(cert);
  if (const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(cert))
    f.ski_hex = hex(ASN1_STRING_get0_data(ski), static_cast<std::size_t>(ASN1_STRING_length(ski)));
  f.subject_dn = subject_text(cert);
  f.issuer_dn = issuer_text(cert);
  f.subject = name_attrs(X509_get_subject_name(cert));
  f.issuer = name_attrs(X509_get_issuer_name(cert));
  f.subject_x500 = x500_text(X509_get_subject_name(cert), f.subject);
  f.issuer_x500 = x500_text(X509_get_issuer_name(cert), f.issuer);
  read_sid_extension(cert, f.sids);

  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type == GEN_EMAIL) {
      f.emails.push_back(asn1_text(gn->d.rfc822Name));
    } else if (gn->type == GEN_URI) {
      std::string uri = asn1_text(gn->d.uniformResourceIdentifier);
      if (uri.starts_with(kSidUriPrefix)) f.sids.push_back(uri.substr(kSidUriPrefix.size()));
    } else if (gn->type == GEN_OTHERNAME) {
      // Microsoft UPN: otherName 1.3.6.1.4.1.311.20.2.3, a UTF8String.
      char oid[64];
      OBJ_obj2txt(oid, sizeof oid, gn->d.otherName->type_id, 1);
      const ASN1_TYPE* v = gn->d.otherName->value;
      if (std::string(oid) == "1.3.6.1.4.1.311.20.2.3" && v && v->type == V_ASN1_UTF8STRING)
        f.upns.push_back(asn1_text(v->value.utf8string));
    }
  }
  GENERAL_NAMES_free(sans);
  return f;
}

}  // namespace certgate::pki
