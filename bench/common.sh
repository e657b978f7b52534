# Shared by compare.sh and profile.sh: the PKI, static file and certgate site both measure, and
# the load tool's fixed arguments. Source it with $work set to a scratch folder.

# bench_setup: the scenario PKI and the static file under $work.
bench_setup() {
  bash scripts/make-pki.sh "$work/pki" >/dev/null
  mkdir -p "$work/www"
  printf 'hello\n' > "$work/www/index.html"
}

# certgate_config PORT THREADS: the measured site (client certificate required, local CRLs,
# a many-to-one mapping), written to $work/certgate.toml.
certgate_config() {
  cat > "$work/certgate.toml" <<TOML
[server]
log_dir = "$work/cg-logs"
threads = $2
cache_dir = ""
[[sites]]
name = "Bench"
root = "$work/www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:$1"
  certificate = "$work/pki/server-chain.pem"
  key = "$work/pki/server.key"
  [sites.client_certificates]
  trusted_cas = ["$work/pki/root-ca.pem"]
  revocation = "cache-only"
  crl_files = ["$work/pki/crl"]
  [sites.mapping]
  [[sites.mapping.many_to_one]]
  name = "Staff"
  user = "staff"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "OU"
    match = "Staff"
TOML
}

# load PORT ARGS...: build/certgate-load against https://127.0.0.1:PORT/ with client
# certificates issued by the scenario's issuing CA, pinned to CPU 1.
load() {
  local port=$1; shift
  build/certgate-load --url "https://127.0.0.1:$port/" --ca "$work/pki/root-ca.pem" \
    --issuer-cert "$work/pki/issuing-ca.pem" --issuer-key "$work/pki/issuing-ca.key" --cpu 1 "$@"
}
