#pragma once
// `certgate import-iis`: IIS configuration (applicationHost.config, web.config files, the output
// of `netsh http show sslcert`) → a certgate TOML configuration and a report of what was
// imported, what was ignored and why, and what behaves differently (behaviour.md §9).
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace certgate::iis {

struct ImportOptions {
  std::filesystem::path applicationhost;
  std::vector<std::pair<std::string, std::filesystem::path>> web_configs;  // "Site/path" → file
  std::filesystem::path netsh;                                             // optional
  std::vector<std::pair<std::string, std::string>> path_maps;              // "C:\x" → "/y"
  std::string only_site;                                                   // "" = every site
  // BINDING ("ip:port:host" as in bindingInformation, or "*") → certificate PEM/PFX [and key]
  struct Certificate {
    std::string binding;
    std::string certificate;
    std::string key;
  };
  std::vector<Certificate> certificates;
  std::vector<std::string> trusted_cas;
  std::vector<std::string> crl_files;
};

struct Report {
  std::vector<std::string> imported;
  std::vector<std::string> ignored;      // with the reason
  std::vector<std::string> differences;  // imported, but certgate behaves otherwise
};

struct ImportResult {
  std::string toml;
  Report report;
};

// Malformed XML (with file, line and column), unreadable files, bad options.
struct ImportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

ImportResult import_iis(const ImportOptions& options);

// Helpers exposed for tests.
std::vector<std::string> ssl_flag_words(const std::string& iis_value);  // names or numbers
struct NetshBinding {
  std::string endpoint;  // "0.0.0.0:443" or "www.contoso.com:443" (SNI) or "443" (CCS)
  bool sni = false;
  std::string certificate_hash;
  std::string store;
  bool negotiate_client_cert = false;
  bool verify_revocation = true;
  bool cached_only = false;
  bool usage_check = true;
  long freshness_seconds = 0;
  long url_timeout_ms = 0;
  std::string ctl_store, ctl_identifier;
  bool ds_mapper = false;
};
std::vector<NetshBinding> parse_netsh(const std::string& text);

}  // namespace certgate::iis
