#!/usr/bin/env bash
# `make demo`: a demo PKI, a demo site and a running certgate on https://127.0.0.1:8443,
# with the curl commands that show each IIS answer.
set -euo pipefail
certgate=${1:-build/certgate}
certgate=$(cd "$(dirname "$certgate")" && pwd)/$(basename "$certgate")
port=${DEMO_PORT:-8443}
top=$(cd "$(dirname "$0")/.." && pwd)
demo="$top/demo"

bash "$top/scripts/make-pki.sh" "$demo/pki" >/dev/null
mkdir -p "$demo/www/public"
cat > "$demo/www/index.html" <<'HTML'
<!DOCTYPE html><html><head><meta charset="utf-8"><title>certgate demo</title></head>
<body><h1>Hello! Your client certificate was accepted.</h1></body></html>
HTML
cat > "$demo/www/public/index.html" <<'HTML'
<!DOCTYPE html><html><head><meta charset="utf-8"><title>certgate demo</title></head>
<body><h1>Public page: no client certificate needed.</h1></body></html>
HTML

cat > "$demo/certgate.toml" <<TOML
# certgate demo configuration (written by scripts/demo.sh; see docs/configuration.md)
[server]
log_dir = "logs"
threads = 0
detailed_errors = "local"
pid_file = "certgate.pid"

[[sites]]
name = "Default Web Site"
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
anonymous = true

  [[sites.bindings]]
  listen = "127.0.0.1:$port"
  certificate = "pki/server-chain.pem"
  key = "pki/server.key"
  client_certificate = "handshake"

  [sites.client_certificates]
  trusted_cas = ["pki/root-ca.pem"]
  send_ca_list = true
  usage_check = true
  revocation = "cache-only"
  crl_files = ["pki/crl"]

  [sites.mapping]
  enabled = true

  # alice's certificate, exactly (what IIS one-to-one does)
  [[sites.mapping.one_to_one]]
  user = "alice"
  certificate = "pki/alice.pem"

  # everyone in OU=Staff from the demo CA, as one account
  [[sites.mapping.many_to_one]]
  name = "Demo staff"
  user = "staff"
  permission = "allow"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "OU"
    match = "Staff"
    [[sites.mapping.many_to_one.rules]]
    field = "Issuer"
    subfield = "O"
    match = "Certgate*"

  [[sites.locations]]
  path = "/public"
  ssl_flags = ["Ssl"]
TOML

"$certgate" check-config -c "$demo/certgate.toml" >/dev/null

p=demo/pki
url="https://127.0.0.1:$port"
cat <<TXT

certgate demo: site "Default Web Site" on $url (client certificate required, except /public)
Run these from $top in another terminal:

  # 200     alice's certificate is mapped one-to-one to user "alice"
  curl --cacert $p/root-ca.pem --cert $p/alice-chain.pem --key $p/alice.key $url/
  # 200     bob (OU=Staff) is mapped by the many-to-one rule "Demo staff" to user "staff"
  curl --cacert $p/root-ca.pem --cert $p/bob-chain.pem --key $p/bob.key $url/
  # 200     /public asks for no certificate
  curl --cacert $p/root-ca.pem $url/public/
  # 403.7   no client certificate
  curl --cacert $p/root-ca.pem $url/
  # 403.13  carol's certificate is revoked (local CRL)
  curl --cacert $p/root-ca.pem --cert $p/carol-chain.pem --key $p/carol.key $url/
  # 403.16  mallory's certificate comes from a CA this site does not trust
  curl --cacert $p/root-ca.pem --cert $p/mallory-chain.pem --key $p/mallory.key $url/
  # 403.16  uma's certificate is valid, but no mapping matches it (win32 1326)
  curl --cacert $p/root-ca.pem --cert $p/uma-chain.pem --key $p/uma.key $url/
  # 403.17  dave's certificate has expired
  curl --cacert $p/root-ca.pem --cert $p/dave-chain.pem --key $p/dave.key $url/
  # offline: the chain of a certificate, and which mapping it gets and why
  $certgate verify -c demo/certgate.toml --site "Default Web Site" $p/carol-chain.pem
  $certgate explain -c demo/certgate.toml --site "Default Web Site" $p/bob-chain.pem

Who got in (cs-username) and why not (sc-substatus, sc-win32-status): demo/logs/W3SVC1/u_ex*.log
Edit demo/certgate.toml and run: $certgate reload -c demo/certgate.toml      Stop: Ctrl-C
TXT
cd "$demo"
exec "$certgate" serve -c "$demo/certgate.toml"
