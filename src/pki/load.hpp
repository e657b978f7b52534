#pragma once
// Reading certificates, CRLs and keys from files (PEM or DER, single files or folders).
// Used at config load and by the CLI, never on a request loop.
#include "pki/openssl_ptr.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace certgate::pki {

// Every certificate in a PEM bundle, or the single certificate of a DER file.
// Throws LoadError naming the file and what is wrong.
std::vector<X509Ptr> load_certificates(const std::filesystem::path& file);
// Certificates from raw bytes (PEM or DER). Empty when none parse.
std::vector<X509Ptr> parse_certificates(const std::string& bytes);
// Every CRL in a file (PEM bundle or DER), or in every regular file of a folder.
std::vector<X509CrlPtr> load_crls(const std::filesystem::path& file_or_folder);

struct KeyAndChain {
  EvpPkeyPtr key;
  X509Ptr cert;
  std::vector<X509Ptr> chain;  // intermediates, leaf excluded
};
// A PKCS#12 (.pfx/.p12) file with its password.
KeyAndChain load_pkcs12(const std::filesystem::path& file, const std::string& password);
// A PEM chain (leaf first) and a PEM private key (which may be the same file).
KeyAndChain load_pem_identity(const std::filesystem::path& cert_file,
                              const std::filesystem::path& key_file);

std::string read_file(const std::filesystem::path& file);  // throws LoadError

struct LoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace certgate::pki
