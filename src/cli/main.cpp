#include "cli/commands.hpp"
#include "pki/key_decoding.hpp"
#include "tls/record_ciphers.hpp"
#include "version.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

int main(int argc, char** argv) {
  using namespace certgate;
  pki::use_builtin_key_methods();
  tls::use_builtin_record_ciphers();
  spdlog::set_default_logger(spdlog::stderr_color_mt("certgate"));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"certgate: HTTPS server that authenticates TLS client certificates the IIS way"};
  app.set_version_flag("--version", std::string("certgate ") + kVersion);
  app.require_subcommand(1);

  std::string config_file;
  bool quiet = false;
  auto* serve = app.add_subcommand("serve", "run the server");
  serve->add_option("-c,--config", config_file, "configuration file (TOML)")->required();
  serve->add_flag("-q,--quiet", quiet, "no startup messages");

  auto* check = app.add_subcommand("check-config", "check a configuration file and exit");
  check->add_option("-c,--config", config_file, "configuration file (TOML)")->required();

  int reload_pid = 0;
  auto* reload = app.add_subcommand("reload", "check the config and make the running server reload it (SIGHUP)");
  reload->add_option("-c,--config", config_file, "configuration file (TOML)")->required();
  reload->add_option("--pid", reload_pid, "process id (default: read [server] pid_file)");

  cli::VerifyArgs v;
  std::int64_t at = 0;
  auto* verify = app.add_subcommand(
      "verify", "validate a client certificate the way a site would (exit 0 accepted, 1 rejected)");
  verify->add_option("-c,--config", v.config_file, "use a site's trust settings from this config");
  verify->add_option("--site", v.site, "site name (with -c)");
  verify->add_option("--path", v.path, "request path whose mapping and authorization apply (with -c; default /)");
  verify->add_option("--ca", v.cas, "trusted issuer certificate file (PEM/DER); repeatable");
  verify->add_option("--untrusted", v.untrusted, "intermediate certificate file; repeatable");
  verify->add_option("--crl", v.crls, "CRL file or folder (PEM/DER); repeatable");
  verify->add_option("--revocation", v.revocation,
                     "online (fetch CRLs / OCSP / missing issuers), cache-only or off; default: the "
                     "site's setting with -c, else cache-only")
      ->check(CLI::IsMember({"online", "cache-only", "off"}));
  verify->add_flag("--urlfetch", v.urlfetch,
                   "like certutil -urlfetch: list every AIA, CDP and OCSP URL of the chain and what "
                   "fetching it did (implies --revocation online unless off)");
  verify->add_option("--cache-dir", v.cache_dir, "revocation cache folder (default: the config's cache_dir)");
  verify->add_flag("--no-usage-check", v.no_usage_check, "do not require the clientAuth EKU");
  auto* at_opt = verify->add_option("--at", at, "validate at this time (unix seconds)");
  verify->add_flag("--json", v.json, "print the verdict as JSON");
  verify->add_option("--policy", v.policies, "acceptable certificate policy OID; repeatable");
  verify->add_flag("--explicit-policy", v.explicit_policy, "require an explicit policy");
  verify->add_flag("--inhibit-policy-mapping", v.inhibit_policy_mapping, "inhibit policy mapping");
  verify->add_flag("--inhibit-any-policy", v.inhibit_any_policy, "inhibit anyPolicy");
  verify->add_option("--min-rsa-bits", v.min_rsa_bits,
                     "accept RSA/DSA keys from this size (default: the site's min_rsa_bits, else 2048)")
      ->check(CLI::Range(1024, 16384));
  verify->add_flag("--allow-sha1", v.allow_sha1, "accept SHA-1 signatures (as allow_sha1 = true)");
  verify->add_flag("--no-strict", v.no_strict,
                   "skip the RFC 5280 profile checks (as x509_strict = false)");
  verify->add_option("--max-chain-depth", v.max_chain_depth,
                     "CA certificates allowed between leaf and anchor (default: the site's, else 8)")
      ->check(CLI::Range(0, 64));
  verify->add_option("CERT", v.cert, "certificate file: the leaf, optionally followed by its chain")
      ->required();

  cli::ExplainArgs x;
  auto* explain = app.add_subcommand(
      "explain", "show which mapping a certificate gets on a site and path, and why (exit 0 = served)");
  explain->add_option("-c,--config", x.config_file, "configuration file")->required();
  explain->add_option("--site", x.site, "site name")->required();
  explain->add_option("--path", x.path, "request path (default /)");
  auto* explain_password = explain->add_option(
      "--password", x.password,
      "two-factor locations: check this password of the mapped user (default: assume the right one); "
      "visible to other local users in the process list: prefer --password-file");
  explain->add_option("--password-file", x.password_file,
                      "as --password, read from the first line of FILE (\"-\": standard input)")
      ->excludes(explain_password);
  explain->add_option("--compare", x.compare_with,
                      "OLD.toml: list the certificates in the folder CERT whose user or verdict "
                      "changes between OLD.toml and -c (exit 1 when any does)");
  explain->add_option("--client", x.client,
                      "on-demand bindings: which way a client of this kind is asked for its certificate")
      ->check(CLI::IsMember({"tls13-pha", "tls13", "tls12", "tls12-legacy", "h2"}));
  explain->add_option("CERT", x.cert, "certificate file (leaf first), or a folder with --compare")
      ->required();

  cli::MapArgs m;
  auto* map = app.add_subcommand("map", "manage a site's one-to-one certificate mappings in the config file");
  map->require_subcommand(1);
  auto* map_add = map->add_subcommand("add", "map a certificate to a user");
  auto* map_list = map->add_subcommand("list", "list the site's mappings");
  auto* map_remove = map->add_subcommand("remove", "remove the entries of a user or a certificate");
  auto* map_ad = map->add_subcommand("ad-string", "print the altSecurityIdentities strings that bind a "
                                                  "certificate to a directory account");
  map_ad->add_option("CERT", m.cert, "certificate file (PEM or DER)")->required();
  for (auto* sub : {map_add, map_list, map_remove}) {
    sub->add_option("-c,--config", m.config_file, "configuration file")->required();
    sub->add_option("--site", m.site, "site name")->required();
  }
  map_add->add_option("--user", m.user, "the account the certificate maps to")->required();
  map_add->add_option("--match", m.match, "certificate (default), public-key, issuer-serial, ski, upn, email");
  map_add->add_option("CERT", m.cert, "certificate file (PEM or DER)")->required();
  map_remove->add_option("--user", m.user, "remove every entry of this user");
  map_remove->add_option("CERT", m.cert, "remove the entries that match this certificate");

  cli::ImportArgs im;
  auto* import = app.add_subcommand("import-iis", "write a certgate config from IIS applicationHost.config, web.config and netsh output");
  import->add_option("--applicationhost", im.applicationhost, "applicationHost.config")->required();
  import->add_option("--web-config", im.web_configs, "SITE/PATH=web.config; repeatable");
  import->add_option("--netsh", im.netsh, "saved output of `netsh http show sslcert`");
  import->add_option("--path-map", im.path_maps, "'C:\\inetpub\\wwwroot=/srv/www'; repeatable");
  import->add_option("--site", im.site, "import only this site");
  import->add_option("--certificate", im.certificates, "BINDING=CERT.pem[:KEY.pem] (BINDING as ip:port:host, or *); repeatable");
  import->add_option("--trusted-cas", im.trusted_cas, "PEM file of trusted client-certificate issuers; repeatable");
  import->add_option("--crl-files", im.crl_files, "CRL file or folder for cache-only revocation; repeatable");
  import->add_option("-o,--output", im.output, "certgate TOML to write (- for standard output)")->required();

  cli::CrlArgs crl;
  auto* crl_cmd = app.add_subcommand("crl", "the revocation cache (cache_dir): list or refresh the cached CRLs");
  crl_cmd->require_subcommand(1);
  auto* crl_status = crl_cmd->add_subcommand("status", "list cached CRLs: issuer, thisUpdate, nextUpdate, last fetch");
  auto* crl_fetch = crl_cmd->add_subcommand("fetch", "fetch every cached CRL again now");
  for (auto* sub : {crl_status, crl_fetch})
    sub->add_option("-c,--config", crl.config_file, "configuration file")->required();
  crl_fetch->add_option("--timeout-ms", crl.timeout_ms, "per URL (default 15000)");

  cli::UsersArgs u;
  auto* users = app.add_subcommand("users", "manage the Basic authentication users file");
  users->require_subcommand(1);
  auto* users_add = users->add_subcommand("add", "add a user or set a password (bcrypt hash)");
  auto* users_remove = users->add_subcommand("remove", "remove a user");
  for (auto* sub : {users_add, users_remove}) {
    sub->add_option("-f,--file", u.file, "users file (user:hash lines)")->required();
    sub->add_option("USER", u.user, "user name")->required();
  }
  users_add->add_flag("--password-stdin", u.password_stdin, "read the password from standard input");

  cli::TokenSignArgs ts;
  auto* token_cmd = app.add_subcommand("token", "token login (docs/token-login.md): sign a server's challenge");
  token_cmd->require_subcommand(1);
  auto* token_sign = token_cmd->add_subcommand("sign", "sign a challenge with a PKCS#11 token's key and log in; "
                                                        "prints the session cookie");
  token_sign->add_option("--challenge-url", ts.challenge_url, "https://HOST/.certgate/token/challenge")->required();
  token_sign->add_option("--pkcs11-module", ts.pkcs11_module, "the token's PKCS#11 module")->required();
  token_sign->add_option("--token-label", ts.token_label, "the token's label")->required();
  token_sign->add_option("--key-label", ts.key_label, "the key's label on the token (default: its only key)");
  token_sign->add_option("--pin-file", ts.pin_file, "file whose first line is the user PIN")->required();
  token_sign->add_option("--cacert", ts.cacert, "CA certificate(s) that the server's certificate chains to");
  token_sign->add_option("--chain", ts.chain, "intermediate certificate(s) to send after the token's certificate");
  token_sign->add_option("--form", ts.form, "cms (detached CMS SignedData, default) or json")
      ->check(CLI::IsMember({"cms", "json"}));
  token_sign->add_flag("--print-response", ts.print_response, "print the signed response instead of sending it");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : cli::kUsage;
  }
  if (*serve) return cli::serve(config_file, quiet);
  if (*check) return cli::check_config(config_file);
  if (*reload) return cli::reload(config_file, reload_pid);
  if (*explain) return cli::explain(x);
  if (*import) return cli::import_iis(im);
  if (*map) {
    m.action = map_add->parsed() ? "add" : map_remove->parsed() ? "remove" : map_ad->parsed() ? "ad-string" : "list";
    if (m.action == "remove" && m.user.empty() && m.cert.empty()) {
      std::cerr << "certgate map remove: give --user USER or a CERT file\n";
      return cli::kUsage;
    }
    return cli::map(m);
  }
  if (*crl_cmd) {
    crl.action = crl_fetch->parsed() ? "fetch" : "status";
    return cli::crl(crl);
  }
  if (*token_cmd) return cli::token_sign(ts);
  if (*users) {
    u.remove = users_remove->parsed();
    return cli::users(u);
  }
  if (*verify) {
    if (*at_opt) v.at = at;
    if (!v.config_file.empty() && v.site.empty()) {
      std::cerr << "certgate verify: -c needs --site NAME\n";
      return cli::kUsage;
    }
    return cli::verify(v);
  }
  return cli::kUsage;
}
