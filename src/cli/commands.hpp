#pragma once
// Subcommands of the certgate binary. Each returns the process exit status.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace certgate::cli {

// Exit statuses shared by every subcommand.
inline constexpr int kOk = 0;
inline constexpr int kRejected = 1;  // verify: the certificate would be refused
inline constexpr int kUsage = 2;     // bad arguments, unreadable files, invalid config

int serve(const std::string& config_file, bool quiet);
int check_config(const std::string& config_file);
// Checks the config, then asks the running server (pid from [server] pid_file) to reload it.
int reload(const std::string& config_file, int pid);

struct VerifyArgs {
  std::string config_file;  // with site: that site's decision (trust, mapping, authorization)
  std::string site;
  std::string path = "/";   // with site: the request path decided
  std::vector<std::string> cas, untrusted, crls;
  std::string revocation;  // online | cache-only | off; "" = the site's, else cache-only
  bool urlfetch = false;   // print every AIA / CDP / OCSP URL of the chain and what fetching it did
  std::string cache_dir;   // the revocation cache to use (default: the config's cache_dir, else none)
  bool no_usage_check = false;
  std::optional<std::int64_t> at;
  bool json = false;
  std::vector<std::string> policies;
  bool explicit_policy = false, inhibit_policy_mapping = false, inhibit_any_policy = false;
  // Weak-crypto and profile settings; unset = the site's (with -c), else the secure defaults.
  std::optional<int> min_rsa_bits, max_chain_depth;
  bool allow_sha1 = false;
  bool no_strict = false;
  std::string cert;
};
int verify(const VerifyArgs& args);

struct ExplainArgs {
  std::string config_file;
  std::string site;
  std::string path = "/";
  std::string compare_with;  // OLD.toml: then `cert` is a folder of certificates
  std::string cert;
  std::optional<std::string> password;  // two-factor: the mapped user's password (unset: assumed right)
  std::string password_file;            // the same, read from a file's first line ("-": stdin)
  std::string client;  // on-demand bindings: tls13-pha | tls13 | tls12 | tls12-legacy | h2 ("" = all)
};
int explain(const ExplainArgs& args);

struct MapArgs {
  std::string action;  // add | list | remove
  std::string config_file;
  std::string site;
  std::string user;
  std::string match = "certificate";
  std::string cert;
};
int map(const MapArgs& args);

struct ImportArgs {
  std::string applicationhost;
  std::vector<std::string> web_configs;  // SITE/PATH=FILE
  std::string netsh;
  std::vector<std::string> path_maps;    // C:\x=/y
  std::string site;
  std::vector<std::string> certificates;  // BINDING=CERT.pem[:KEY.pem]
  std::vector<std::string> trusted_cas;
  std::vector<std::string> crl_files;
  std::string output;
};
int import_iis(const ImportArgs& args);

struct CrlArgs {
  std::string action;  // status | fetch
  std::string config_file;
  std::uint32_t timeout_ms = 15000;
};
int crl(const CrlArgs& args);

struct UsersArgs {
  std::string file;
  std::string user;
  bool remove = false;
  bool password_stdin = false;
};
int users(const UsersArgs& args);

struct TokenSignArgs {
  std::string challenge_url;  // https://host/.certgate/token/challenge; the response goes beside it
  std::string pkcs11_module;  // e.g. /usr/lib/softhsm/libsofthsm2.so
  std::string token_label;
  std::string key_label;      // the key (and its certificate) on the token; "" = the token's only one
  std::string pin_file;       // first line: the user PIN
  std::string cacert;         // trust for the server's certificate ("" = the system's)
  std::vector<std::string> chain;  // intermediate certificates to send after the token's own
  std::string form = "cms";   // cms | json
  bool print_response = false;  // print the signed response instead of sending it
};
// Signs a challenge with a key that never leaves the PKCS#11 token and logs in: prints the
// session cookie ("name=value") on success.
int token_sign(const TokenSignArgs& args);

}  // namespace certgate::cli
