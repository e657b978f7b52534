#pragma once
// The configuration as written by the administrator, after parsing and checking, before any
// certificate is decoded. Every key is documented in docs/configuration.md.
#include "auth/policy.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace certgate::config {

namespace fs = std::filesystem;

enum class DetailedErrors { Local, Always, Never };
enum class Revocation { Online, CacheOnly, Off };
enum class SessionResumption { Cache, Tickets };
enum class LogPeriod { Hourly, Daily, Weekly, Monthly };

// Beast keeps a header field's length in 16 bits and throws on a longer one (from inside the
// parser: the process would abort). No request head, trailer section or backend answer head
// may therefore be held whole in more bytes than this, whatever the limits say.
inline constexpr std::size_t kMaxHeadBytes = 65535;

struct Limits {
  std::size_t max_header_bytes = 16384;      // whole request head; over → 431; ≤ kMaxHeadBytes
  std::size_t max_headers = 100;             // header field count; over → 431
  std::size_t max_url_bytes = 4096;          // request target; over → 414 (IIS maxUrl)
  std::uint64_t max_body_bytes = 30000000;   // over → 413 (IIS maxAllowedContentLength)
  std::uint32_t header_timeout_ms = 30000;   // request head must arrive within; else 408
  std::uint32_t body_timeout_ms = 60000;     // request body must arrive within; else 408
  std::uint32_t keepalive_timeout_ms = 120000;  // idle keep-alive connection closed after
  std::uint32_t handshake_timeout_ms = 10000;   // TLS handshake must finish within
  std::size_t max_connections = 20000;          // open connections per process; more are closed
  std::size_t max_pending_password_checks = 64;  // queued Basic checks; more → 503
  // HTTP/2 (docs/security.md "HTTP/2"): streams open at once per connection (SETTINGS); and the
  // streams a client may reset before their answer, as a burst refilled per second, beyond
  // which the connection is closed with GOAWAY (rapid reset, CVE-2023-44487).
  std::uint32_t h2_max_concurrent_streams = 100;
  std::uint32_t h2_reset_burst = 1000;
  std::uint32_t h2_resets_per_second = 33;
};

// [server.fetch]: how revocation fetches (CRL, OCSP, AIA) leave the host (docs/configuration.md).
struct FetchSettings {
  // An HTTP proxy for http(s) fetches. nullopt: the environment's (https_proxy, http_proxy,
  // all_proxy); "" = none, whatever the environment says.
  std::optional<std::string> proxy;
  // Hosts reached directly (curl's syntax: names, .domain suffixes, IPs, CIDR, "*"). nullopt:
  // the environment's no_proxy.
  std::optional<std::vector<std::string>> no_proxy;
  // Where host-less ldap:///DN distribution points (AD CS) are looked up, tried in order.
  std::vector<std::string> ldap_hosts;
  std::string ldap_bind_dn;    // "" = anonymous
  std::string ldap_password;   // from ldap_password_file; never logged
};

// [server.state]: the single-use store (src/state/store.hpp) for token-login nonces and step-up
// tickets. "memory": this process only; "redis": shared by every instance pointing at it.
enum class StateBackend : std::uint8_t { Memory, Redis };
struct StateSettings {
  StateBackend backend = StateBackend::Memory;
  std::string url;  // as written: "redis://127.0.0.1:6379/0" or "rediss://..."
  bool tls = false;  // rediss://: TLS, the server's certificate verified and its name checked
  fs::path ca_file;  // rediss://: trust these CAs instead of the system's store
  fs::path client_certificate;  // rediss://: for Redis's tls-auth-clients
  fs::path client_key;          // "" = in client_certificate
  std::string host;
  int port = 6379;
  int database = 0;
  std::string password;         // from password_file; never logged
  unsigned workers = 2;         // Redis connections, one per worker thread
  std::size_t max_pending = 1024;  // requests waiting for a worker; beyond: unavailable (503)
  std::uint32_t timeout_ms = 1000;  // connect and per-command
  std::size_t max_entries = 100000;  // memory backend
};

struct ServerSettings {
  fs::path log_dir = "logs";
  unsigned threads = 0;  // 0 = one event loop per core
  DetailedErrors detailed_errors = DetailedErrors::Local;
  Limits limits;
  std::uint32_t shutdown_grace_ms = 10000;
  fs::path pid_file;  // written at start (for `certgate reload`); empty = none
  // The revocation cache (fetched CRLs survive restarts here); "" = memory only.
  fs::path cache_dir = "cache";
  std::size_t max_fetch_bytes = 10 << 20;  // one CRL / OCSP / AIA answer
  int max_fetch_redirects = 3;
  std::size_t revocation_cache_bytes = 256u << 20;
  std::size_t revocation_cache_entries = 2000;
  // What one certificate may make the server fetch (per kind: distribution points, OCSP, AIA),
  // and how many fetches run at once across the process.
  std::size_t revocation_urls_per_certificate = 4;
  std::size_t revocation_concurrent_fetches = 16;
  FetchSettings fetch;
  // "cache": sessions kept in this process (fastest resumption, survives reloads, not restarts);
  // "tickets": stateless tickets under hourly-rotated keys (no server memory per session).
  SessionResumption session_resumption = SessionResumption::Cache;
  std::size_t session_cache_size = 20000;
  // The cache keeps each session's decoded client chain: bounded in (estimated) bytes too.
  std::size_t session_cache_bytes = 128u << 20;
  std::uint32_t session_timeout_seconds = 3600;
  // Session ticket key files shared by instances (48 or 80 bytes each, nginx's layout): the
  // first encrypts, all decrypt. Empty: keys made in memory and rotated hourly.
  std::vector<fs::path> ticket_key_files;
  // Largest TLS Certificate message accepted from a client (SSL_CTX_set_max_cert_list); a
  // larger one fails the handshake.
  std::size_t max_client_cert_list_bytes = 32 << 10;
  // TLS 1.2 cipher list (OpenSSL syntax; TLS 1.3 suites are OpenSSL's). The default leaves out
  // static-RSA key exchange (no forward secrecy); a list that brings it back is honoured.
  std::string ciphers = "DEFAULT:!kRSA";
  // Plain-HTTP listener for operators: /metrics (Prometheus text). "" = none.
  std::string admin_listen;
  std::string admin_address;
  std::uint16_t admin_port = 0;
  StateSettings state;
  // Peers allowed on the admin listener (CIDR blocks); others are closed at accept.
  std::vector<std::string> admin_allow = {"127.0.0.0/8", "::1/128"};
  // Host names the status page, status.json and /metrics answer to besides IP literals and
  // localhost: a web page that rebinds its own name to this address gets nothing.
  std::vector<std::string> admin_hosts;
  // Set: the admin listener speaks TLS with this certificate and answers only clients whose
  // certificate chains to admin_client_cas. Read at start.
  std::vector<fs::path> admin_client_cas;
  fs::path admin_certificate;
  fs::path admin_key;  // "" = in admin_certificate
  // Started as root: the account to switch to once listeners are open and keys read. "" = stay.
  std::string user;
};

// IIS's default <hiddenSegments> (applicationHost.config as installed).
std::vector<std::string> default_hidden_segments();

struct Binding {
  std::string listen;   // as written: "127.0.0.1:8443", "[::1]:8443", "*:8443"
  std::string address;  // "127.0.0.1", "::1", "0.0.0.0"
  std::uint16_t port = 0;
  bool https = true;
  std::string host;     // SNI / Host name, lower case; empty = default for the address
  fs::path certificate;
  fs::path key;         // empty: the key is in `certificate` (PEM) or it is a PKCS#12 file
  std::string pfx_password;
  // client_certificate = "on-demand": no CertificateRequest at the handshake; a request that
  // reaches a location negotiating a certificate asks then (docs/on-demand.md).
  bool on_demand = false;
  // A PROXY protocol header (v1 or v2) comes first on every connection, sent by an L4 load
  // balancer among proxy_protocol_from (CIDRs); the client address it names is the client's.
  bool proxy_protocol = false;
  std::vector<std::string> proxy_protocol_from;
  // ALPN, in the server's order of preference: "h2" and/or "http/1.1" (https only).
  std::vector<std::string> protocols = {"h2", "http/1.1"};
};

struct ClientCertificates {
  std::vector<fs::path> trusted_cas;
  std::vector<fs::path> intermediates;
  std::vector<fs::path> crl_files;
  bool send_ca_list = true;
  // Name the configured intermediates in the CertificateRequest too, so that a browser holding
  // only a leaf (its issuing CA not installed) offers it. Default: on when intermediates are set.
  bool ca_list_intermediates = false;
  bool usage_check = true;
  Revocation revocation = Revocation::Online;  // spec: behaviour.md §2 "online (default)"
  bool prefer_ocsp = false;
  std::uint32_t freshness_seconds = 0;   // IIS revocationfreshnesstime; 0 = nextUpdate decides
  std::uint32_t url_timeout_ms = 15000;  // IIS urlretrievaltimeout
  bool soft_fail = false;
  std::uint32_t retry_seconds = 30;      // a URL that failed is not asked again sooner
  // Weak cryptography and profile (docs/validation.md "Weak keys and digests", "Profile checks").
  // Lowering min_rsa_bits, allow_sha1 = true and x509_strict = false weaken the site.
  std::uint32_t min_rsa_bits = 2048;  // RSA and DSA keys in the path, trust anchor included
  bool allow_sha1 = false;            // SHA-1 signatures below the trust anchor
  bool x509_strict = true;            // RFC 5280 profile checks
  std::uint32_t max_chain_depth = 8;  // CA certificates between the leaf and its trust anchor
};

struct Location {
  std::string path;  // "/admin"; matched on whole segments, case-insensitively (as IIS)
  std::optional<auth::SslFlags> ssl_flags;
  std::optional<bool> anonymous;
  std::optional<bool> require_password;
  std::optional<std::vector<std::string>> allow_users, deny_users, allow_groups, deny_groups;
  std::optional<std::string> backend;  // "" = serve static files here even if the site proxies
  // Request filtering for this location and below (replacing the site's): opting a proxied
  // location out takes hidden_segments = [] and allow_dot_segments = true.
  std::optional<std::vector<std::string>> hidden_segments;
  std::optional<bool> allow_dot_segments;
  std::optional<std::string> authenticated_cache_control;  // "" = send none here
  std::optional<bool> token_login;  // the token-login cookie stands for a certificate here
};

// One IIS <httpErrors> <error> entry: the administrator's page for a status(.substatus).
struct ErrorPageFile {
  int status = 0;
  int substatus = -1;  // -1: any substatus
  fs::path file;
  std::string body;    // read when the configuration is loaded
};

struct Proxy {
  std::uint32_t connect_timeout_ms = 5000;  // backend unreachable → 502.3
  std::uint32_t read_timeout_ms = 60000;    // no response head / no progress → 504
  std::size_t max_idle = 16;                // idle keep-alive connections per backend and loop
  bool preserve_host = false;               // send the client's Host instead of the backend's
  std::vector<fs::path> trusted_cas;        // https backends; empty = the system's CA store
  bool verify = true;                       // https backends: check certificate and name
};

struct Assertion {
  fs::path key_file;  // PEM private key, EC P-256 (ES256) or Ed25519 (EdDSA); empty = off
  std::uint32_t lifetime_seconds = 60;
  std::string issuer = "certgate";
  std::string audience;
  std::string jwks_path = "/.well-known/certgate/jwks.json";
};

struct Forward {
  std::string user_header = "X-Remote-User";        // "" = do not send
  std::string auth_type_header = "X-Remote-Auth-Type";
  std::string client_cert = "x-arr-clientcert";     // x-arr-clientcert | rfc9440 | xfcc | pem | none
  // client_cert = "pem": the headers Tomcat's SSLValve (and Apache mod_headers setups) read.
  std::string client_cert_header = "ssl_client_cert";
  std::string client_cert_chain_header = "ssl_client_cert_chain";  // "" = do not send
  bool cert_fields = false;  // X-Client-Cert-Subject/-Issuer/-Serial/-Not-After/-Fingerprint
  // Forward request headers whose names contain '_' (nginx's underscores_in_headers). Off: CGI-
  // style backends would read X_Remote_User as X-Remote-User.
  bool underscores_in_headers = false;
  Assertion assertion;
};

struct OneToOne {
  std::string user;
  std::string certificate;  // a PEM/DER file (relative to the config) or base64 DER text
  std::string match = "certificate";  // certificate | public-key | issuer-serial | ski | upn | email
  std::string value;        // instead of `certificate` for the other match kinds
  bool enabled = true;
  std::string origin;       // "certgate.toml:40: sites[0].mapping.one_to_one[2]"
  int line = 0;             // line of its [[sites.mapping.one_to_one]] header
};

struct RuleConfig {
  std::string field;     // Subject | Issuer
  std::string subfield;  // canonical label (CN, O, OU, L, S, C, E, ...)
  std::string match;
  bool case_sensitive = true;
};

struct ManyToOne {
  std::string name;
  std::string description;
  std::string user;
  bool allow = true;
  bool enabled = true;
  std::vector<RuleConfig> rules;
  std::string origin;
};

struct Mapping {
  bool enabled = false;  // true when [sites.mapping] is present, unless it says otherwise
  bool one_to_one_enabled = true;
  bool many_to_one_enabled = true;
  std::vector<OneToOne> one_to_one;
  std::vector<ManyToOne> many_to_one;
};

// [sites.directory_mapping]: find the account in LDAP (docs/directory.md).
struct DirectoryMapping {
  bool enabled = false;             // true when the table is present, unless it says otherwise
  std::vector<std::string> urls;    // ldap:// or ldaps://, tried in order (failover)
  std::string bind_dn;              // "" = anonymous bind
  std::string bind_password;        // from bind_password or bind_password_file; never logged
  std::string base_dn;
  std::string account_filter = "(objectClass=*)";
  std::string mapping_attribute = "altSecurityIdentities";
  std::string user_attribute = "sAMAccountName";
  std::string upn_attribute = "userPrincipalName";
  std::string sid_attribute = "objectSid";
  std::string domain;               // "CORP" → user "CORP\\alice", as IIS logs AD accounts
  std::string group_attribute = "memberOf";  // on the account; "" = none
  std::string group_base_dn;        // with group_filter: search groups instead of memberOf
  std::string group_filter;         // "(member={dn})"; {dn} = the account's DN, escaped
  std::string group_name_attribute = "cn";
  bool allow_weak = false;
  fs::path ca_file;                 // ldaps:// server certificate issuers; "" = system store
  std::uint32_t connect_timeout_ms = 3000;
  std::uint32_t timeout_ms = 5000;  // per search or bind
  std::uint32_t pool_size = 4;      // connections (each a worker thread)
  std::uint32_t max_pending = 1000; // lookups waiting for a connection; more → 503
  std::uint32_t cache_seconds = 300;           // a found account is reused this long
  std::uint32_t negative_cache_seconds = 60;   // "no account" / "several accounts" too
  std::size_t cache_entries = 100000;
};

struct Basic {
  bool enabled = false;
  fs::path users_file;  // htpasswd-style "user:hash" (bcrypt, sha-crypt, yescrypt)
  std::string realm = "certgate";
};

// [sites.token_login] (docs/token-login.md): the signed-challenge login under /.certgate/token/.
struct TokenLogin {
  bool enabled = false;
  std::uint32_t nonce_lifetime_seconds = 120;
  std::uint32_t session_seconds = 3600;  // the cookie's lifetime (also bounded by notAfter)
  // __Host-: a browser takes it only from this host, Secure, Path=/ and without Domain, so a
  // sibling subdomain cannot plant its own session in front of the user's.
  std::string cookie_name = "__Host-certgate_token";
  std::string cookie_key;  // from cookie_key_file (the same file on every instance); never logged
  std::size_t max_response_bytes = 64 << 10;
};

// [sites.step_up]: where an on-demand location sends a client that cannot be asked for a
// certificate after the handshake (docs/on-demand.md).
struct StepUp {
  bool enabled = false;
  std::string url;        // "https://login.example.test:8444/" (ends with '/')
  std::string authority;  // "login.example.test:8444", lower case, as a Host header names it
  std::string cookie_name = "certgate_cert";
  std::uint32_t lifetime_seconds = 3600;
  fs::path key_file;      // HMAC key (at least 32 bytes); shared by instances
};

struct SiteLog {
  bool enabled = true;
  fs::path directory;  // default: <log_dir>/W3SVC<id>
  LogPeriod period = LogPeriod::Daily;
  std::vector<std::string> fields;  // W3C field names, in order
};

struct Site {
  std::string name;
  int line = 0;  // line of its [[sites]] header
  int id = 0;
  fs::path root;
  std::vector<std::string> default_documents;
  auth::SslFlags ssl_flags;
  bool anonymous = true;
  // IIS request filtering: path segments answered 404.8 (static files and proxied locations)
  std::vector<std::string> hidden_segments = default_hidden_segments();
  bool allow_dot_segments = false;  // false: ".git", ".env"... are hidden too (not ".well-known")
  std::vector<Binding> bindings;
  ClientCertificates client_certificates;
  Mapping mapping;
  DirectoryMapping directory;
  Basic basic;
  fs::path groups_file;  // "group: user1 user2" lines
  std::string backend;   // "http://host:port", "https://host:port" or "unix:/path.sock"; "" = static
  Proxy proxy;
  Forward forward;
  std::vector<Location> locations;
  SiteLog log;
  // Cache-Control on answers to authenticated requests (docs/error-pages.md); "" = none.
  std::string authenticated_cache_control = "private, no-cache";
  std::vector<ErrorPageFile> error_pages;  // [sites.error_pages]
  TokenLogin token_login;
  // IIS uploadReadAheadSize: the body read before a TLS 1.2 renegotiation; a larger one → 413.0.
  std::uint64_t upload_read_ahead_bytes = 49152;
  StepUp step_up;
};

struct Config {
  fs::path file;
  fs::path base;  // folder that relative paths are resolved against
  ServerSettings server;
  std::vector<Site> sites;
  std::vector<std::string> warnings;  // accepted, but worth telling the administrator
  // SHA-256 of the file's text: the "configuration generation" a step-up cookie is bound to,
  // the same on every instance that loads the same file.
  std::string digest;
};

// "certgate.toml:12:3: sites[0].ssl_flags: unknown flag "Ssl129"; expected ..."
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses and checks the file. Relative paths are resolved against the file's folder.
// Throws ConfigError naming file, line, column and key.
Config load(const fs::path& file);

std::vector<std::string> default_log_fields();

}  // namespace certgate::config
