#!/usr/bin/env bash
# A PKI whose certificates name real URLs on loopback, for the online-revocation tests:
# CRL distribution points and AIA caIssuers on an HTTP server at HTTP_PORT, OCSP at OCSP_PORT,
# one distribution point on DEAD_PORT where nothing listens.
# Usage: online_pki.sh OUT HTTP_PORT OCSP_PORT DEAD_PORT LDAP_PORT
set -euo pipefail
out=$1 http=$2 ocsp=$3 dead=$4 ldap=$5
base="http://127.0.0.1:$http"
rm -rf "$out"
mkdir -p "$out/www"
cd "$out"

cat > ca.cnf <<CNF
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = \$ENV::CADIR
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
certificate = \$dir/ca.pem
private_key = \$dir/ca.key
serial = \$dir/serial
crlnumber = \$dir/crlnumber
default_md = sha256
default_days = 825
default_crl_days = 30
policy = policy_any
unique_subject = no
[ policy_any ]
countryName = optional
organizationName = optional
commonName = supplied
[ crl_ext ]
authorityKeyIdentifier = keyid:always
[ v3_issuing ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:$base/root.crl
authorityInfoAccess = caIssuers;URI:$base/root.cer
[ v3_ocsp_signer ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
CNF

leaf_section() {  # NAME EXTRA-LINES
  printf '[ %s ]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n%s\n' "$1" "$2" >> ca.cnf
}
leaf_section v3_crl "crlDistributionPoints = URI:$base/issuing.crl
authorityInfoAccess = caIssuers;URI:$base/issuing.cer"
leaf_section v3_ocsp "authorityInfoAccess = OCSP;URI:http://127.0.0.1:$ocsp"
leaf_section v3_dead "crlDistributionPoints = URI:http://127.0.0.1:$dead/issuing.crl"
leaf_section v3_slow "crlDistributionPoints = URI:$base/slow.crl"
leaf_section v3_big "crlDistributionPoints = URI:$base/big.crl"
leaf_section v3_wrongkey "crlDistributionPoints = URI:$base/wrongkey.crl"
leaf_section v3_short "crlDistributionPoints = URI:$base/short.crl"
leaf_section v3_steady "crlDistributionPoints = URI:$base/steady.crl"
leaf_section v3_conny "crlDistributionPoints = URI:$base/conny.crl"
leaf_section v3_petra "crlDistributionPoints = URI:$base/petra.crl
authorityInfoAccess = OCSP;URI:http://127.0.0.1:$ocsp"
leaf_section v3_pete "crlDistributionPoints = URI:$base/pete.crl
authorityInfoAccess = OCSP;URI:http://127.0.0.1:$ocsp"
leaf_section v3_redirect "crlDistributionPoints = URI:$base/redirect.crl"
leaf_section v3_loop "crlDistributionPoints = URI:$base/loop.crl"
leaf_section v3_bad_scheme "crlDistributionPoints = URI:file:///etc/passwd"
leaf_section v3_ldap "crlDistributionPoints = URI:ldap://127.0.0.1:$ldap/cn=issuing%2Cou=crl%2Cdc=corp%2Cdc=test?certificateRevocationList;binary"
leaf_section v3_under_revoked "crlDistributionPoints = URI:$base/revoked-ca.crl"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
ca_dir() { mkdir -p "ca/$1/newcerts"; : > "ca/$1/index.txt"; echo "$2" > "ca/$1/serial"; echo 1000 > "ca/$1/crlnumber"; }
sign() {  # ISSUER NAME CN EXT
  key "$2"
  openssl req -new -key "$2.key" -subj "/O=Online Demo/CN=$3" -out "$2.csr" 2>/dev/null
  CADIR="$out/ca/$1" openssl ca -batch -config ca.cnf -extensions "$4" -notext -preserveDN \
    -in "$2.csr" -out "$2.pem" 2>/dev/null
  rm -f "$2.csr"
}
crl() {  # CA OUTFILE [options]
  local ca=$1 file=$2; shift 2
  CADIR="$out/ca/$ca" openssl ca -config ca.cnf -gencrl -crlexts crl_ext "$@" -out "$file.pem" 2>/dev/null
  openssl crl -in "$file.pem" -outform DER -out "$file"
  rm -f "$file.pem"
}

ca_dir root 1000
key ca/root/ca
openssl req -x509 -new -key ca/root/ca.key -subj "/O=Online Demo/CN=Online Root CA" -days 3650 -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" -out ca/root/ca.pem
cp ca/root/ca.pem root.pem

for ca in issuing revoked-ca; do
  ca_dir "$ca" 2000
  sign root "$ca" "Online $( [ "$ca" = issuing ] && echo Issuing || echo Revoked ) CA" v3_issuing
  cp "$ca.pem" "ca/$ca/ca.pem"; cp "$ca.key" "ca/$ca/ca.key"
done
CADIR="$out/ca/root" openssl ca -config ca.cnf -revoke revoked-ca.pem 2>/dev/null

sign issuing olga olga v3_crl          # good, by CRL
sign issuing oscar oscar v3_crl        # revoked in issuing.crl
sign issuing aida aida v3_crl          # good; presented without its issuer (AIA caIssuers)
sign issuing ocean ocean v3_ocsp       # OCSP: good
sign issuing orville orville v3_ocsp   # OCSP: revoked
sign issuing dora dora v3_dead         # distribution point nobody answers
sign issuing sloane sloane v3_slow     # distribution point slower than url_timeout_ms
sign issuing bigsby bigsby v3_big      # CRL larger than max_fetch_bytes
sign issuing wendy wendy v3_wrongkey   # CRL signed by another key under the issuer's name
sign issuing shorty shorty v3_short    # CRL with a nextUpdate seconds away
sign issuing steady steady v3_steady   # CRL valid a day, replaced meanwhile by one revoking it
sign issuing conny conny v3_conny      # fetched by many requests at once
sign issuing petra petra v3_petra      # both a distribution point and an OCSP responder
sign issuing pete pete v3_pete         # the same, for the default order
sign issuing remy remy v3_redirect     # distribution point that redirects to the real CRL
sign issuing lou lou v3_loop           # distribution point that redirects to itself
sign issuing fiona fiona v3_bad_scheme # a file:// distribution point: never fetched
sign issuing lars lars v3_ldap         # CRL in a directory (ldap:// distribution point)
sign revoked-ca ronald ronald v3_under_revoked  # good leaf under a revoked intermediate

# OCSP "unknown": a certificate the responder's database does not hold.
key ulrich
openssl req -new -key ulrich.key -subj "/O=Online Demo/CN=ulrich" -out ulrich.csr 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:%s\n' "$ocsp" > ulrich.ext
openssl x509 -req -in ulrich.csr -CA issuing.pem -CAkey issuing.key -set_serial 0x7777 -days 30 \
  -extfile ulrich.ext -out ulrich.pem 2>/dev/null
rm -f ulrich.csr ulrich.ext

CADIR="$out/ca/issuing" openssl ca -config ca.cnf -revoke oscar.pem 2>/dev/null
CADIR="$out/ca/issuing" openssl ca -config ca.cnf -revoke orville.pem 2>/dev/null

# The OCSP responder signs with a delegated key (OCSPSigning), as most CAs do.
sign issuing responder "Online OCSP Responder" v3_ocsp_signer

crl root www/root.crl
crl issuing www/issuing.crl
crl revoked-ca www/revoked-ca.crl
cp www/issuing.crl www/slow.crl
cp www/issuing.crl www/conny.crl
cp www/issuing.crl www/petra.crl
cp www/issuing.crl www/pete.crl
crl issuing www/short.crl            # the test republishes it with a 4-second validity
openssl x509 -in root.pem -outform DER -out www/root.cer
openssl x509 -in issuing.pem -outform DER -out www/issuing.cer
head -c 3000000 /dev/urandom > www/big.crl

# Same issuer name, another key: what an attacker on the path could serve.
key forged
openssl req -x509 -new -key forged.key -subj "/O=Online Demo/CN=Online Issuing CA" -days 30 -out forged.pem 2>/dev/null
ca_dir forged 3000
cp forged.pem ca/forged/ca.pem; cp forged.key ca/forged/ca.key
crl forged www/wrongkey.crl

for u in olga oscar ocean orville ulrich dora sloane bigsby wendy shorty steady conny fiona lars petra pete remy lou; do
  cat "$u.pem" issuing.pem > "$u-chain.pem"
done
cat ronald.pem revoked-ca.pem > ronald-chain.pem
cp aida.pem aida-chain.pem   # the leaf alone
