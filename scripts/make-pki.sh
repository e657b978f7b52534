#!/usr/bin/env bash
# Builds the scenario PKI that the tests and the demo use, with the openssl CLI:
#   root-ca ─┬─ issuing-ca ─┬─ alice, bob (valid), carol (revoked), dave (expired),
#            │              │  erin (not yet valid), frank (serverAuth-only EKU), server
#            ├─ old-issuing-ca (expired) ── gina
#            ├─ revoked-issuing-ca (revoked on root's CRL) ── hank
#            ├─ nocrl-issuing-ca (publishes no CRL) ── ivan
#            └─ stale-issuing-ca (CRL past nextUpdate) ── judy
#   partner-root-ca ── paul            (trusted only by the "partner" site)
#   evil-root-ca ── mallory            (trusted by nobody)
# plus corrupt-sig.pem (alice with a damaged signature) and garbage.pem.
# Usage: make-pki.sh OUTDIR   (ECDSA P-256; certificates are valid from now on, so regenerate
# rather than commit them)
set -euo pipefail
out=${1:?usage: make-pki.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out"/* 
mkdir -p "$out/ca" "$out/crl"
cd "$out"

ts() { date -u -d "$1" +%Y%m%d%H%M%SZ; }

cat > ca.cnf <<'CNF'
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = $ENV::CADIR
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 825
default_crl_days = 30
policy = policy_any
unique_subject = no
email_in_dn = yes
[ policy_any ]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
emailAddress = optional
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_client_san ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = email:zoe@demo.test, otherName:1.3.6.1.4.1.311.20.2.3;UTF8:zoe@corp.demo.test
[ v3_serverauth_only ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:localhost, DNS:site-a.test, DNS:site-b.test, DNS:partner.test, DNS:nousage.test, IP:127.0.0.1, IP:::1
[ crl_ext ]
authorityKeyIdentifier = keyid:always
CNF

key() {  # KEY_ALG=RSA for an RSA-2048 key, else EC P-256
  if [ "${KEY_ALG:-EC}" = RSA ]; then openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null
  else openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; fi
}

# root NAME SUBJECT
root() {
  local d="ca/$1"
  mkdir -p "$d/newcerts"; : > "$d/index.txt"; echo 1000 > "$d/serial"; echo 1000 > "$d/crlnumber"
  key "$d/ca"
  openssl req -x509 -new -key "$d/ca.key" -subj "$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$d/ca.pem"
  cp "$d/ca.pem" "$1.pem"
}

# sign ISSUER NAME SUBJECT EXTENSIONS [STARTDATE ENDDATE]  (KEY=file reuses a key)
sign() {
  local issuer=$1 name=$2 subj=$3 ext=$4 start=${5:-} end=${6:-}
  if [ -n "${KEY:-}" ]; then cp "$KEY" "$name.key"; else key "$name"; fi
  openssl req -new -key "$name.key" -subj "$subj" -multivalue-rdn -out "$name.csr" 2>/dev/null
  local dates=(-days 825)
  [ -n "$start" ] && dates=(-startdate "$start" -enddate "$end")
  CADIR="$out/ca/$issuer" openssl ca -batch -config ca.cnf -extensions "$ext" -notext -preserveDN \
    "${dates[@]}" -in "$name.csr" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr"
}

# intermediate ISSUER NAME SUBJECT [STARTDATE ENDDATE]: a CA signed by ISSUER
intermediate() {
  local issuer=$1 name=$2 subj=$3
  sign "$issuer" "$name" "$subj" v3_ca "${4:-}" "${5:-}"
  local d="ca/$name"
  mkdir -p "$d/newcerts"; : > "$d/index.txt"; echo 2000 > "$d/serial"; echo 2000 > "$d/crlnumber"
  cp "$name.pem" "$d/ca.pem"; cp "$name.key" "$d/ca.key"
}

revoke() { CADIR="$out/ca/$1" openssl ca -config ca.cnf -revoke "$2.pem" 2>/dev/null; }

crl() {  # crl CA [extra openssl ca options]
  local ca=$1; shift
  CADIR="$out/ca/$ca" openssl ca -config ca.cnf -gencrl -crlexts crl_ext "$@" -out "crl/$ca.crl" 2>/dev/null
}

root root-ca "/C=US/O=Certgate Demo/CN=Certgate Demo Root CA"
intermediate root-ca issuing-ca "/C=US/O=Certgate Demo/CN=Certgate Demo Issuing CA"
intermediate root-ca old-issuing-ca "/C=US/O=Certgate Demo/CN=Certgate Demo Old Issuing CA" \
  "$(ts '-3 years')" "$(ts '-1 day')"
intermediate root-ca revoked-issuing-ca "/C=US/O=Certgate Demo/CN=Certgate Demo Revoked Issuing CA"
intermediate root-ca nocrl-issuing-ca "/C=US/O=Certgate Demo/CN=Certgate Demo No-CRL Issuing CA"
intermediate root-ca stale-issuing-ca "/C=US/O=Certgate Demo/CN=Certgate Demo Stale-CRL Issuing CA"

sign issuing-ca server "/C=US/O=Certgate Demo/CN=localhost" v3_server
sign issuing-ca alice "/C=US/O=Certgate Demo/OU=Engineering/CN=alice/emailAddress=alice@demo.test" v3_client
sign issuing-ca bob "/C=US/O=Certgate Demo/OU=Staff/CN=bob" v3_client
sign issuing-ca carol "/C=US/O=Certgate Demo/OU=Staff/CN=carol" v3_client
sign issuing-ca dave "/C=US/O=Certgate Demo/OU=Staff/CN=dave" v3_client "$(ts '-2 years')" "$(ts '-1 day')"
sign issuing-ca erin "/C=US/O=Certgate Demo/OU=Staff/CN=erin" v3_client "$(ts '+1 year')" "$(ts '+2 years')"
sign issuing-ca frank "/C=US/O=Certgate Demo/OU=Staff/CN=frank" v3_serverauth_only
# alice again, as after a renewal: same subject, new key and serial; and a renewal that kept the key
sign issuing-ca alice-renewed "/C=US/O=Certgate Demo/OU=Engineering/CN=alice/emailAddress=alice@demo.test" v3_client
KEY=alice.key sign issuing-ca alice-rekeyless "/C=US/O=Certgate Demo/OU=Engineering/CN=alice/emailAddress=alice@demo.test" v3_client
sign issuing-ca zoe "/C=US/O=Certgate Demo/OU=Contractors/CN=zoe" v3_client_san
sign issuing-ca mona "/C=US/O=Certgate Demo/OU=Sales+OU=Staff/CN=mona" v3_client
sign issuing-ca otto "/C=US/O=Certgate Demo/OU=Staff/CN=otto" v3_client
sign issuing-ca uma "/C=US/O=Certgate Demo/OU=Visitors/CN=uma" v3_client
KEY_ALG=RSA sign issuing-ca rita "/C=US/O=Certgate Demo/OU=Staff/CN=rita" v3_client  # smart cards are mostly RSA
sign old-issuing-ca gina "/C=US/O=Certgate Demo/OU=Staff/CN=gina" v3_client "$(ts '-2 years')" "$(ts '+1 year')"
sign revoked-issuing-ca hank "/C=US/O=Certgate Demo/OU=Staff/CN=hank" v3_client
sign nocrl-issuing-ca ivan "/C=US/O=Certgate Demo/OU=Staff/CN=ivan" v3_client
sign stale-issuing-ca judy "/C=US/O=Certgate Demo/OU=Staff/CN=judy" v3_client

# Directory mapping (docs/directory.md): SIDs in a SAN URI and in the szOID_NTDS_CA_SECURITY_EXT
# extension, a UPN whose account has another SID, and names made to break an LDAP filter.
sid_ext_der() {  # GeneralNames { otherName 1.3.6.1.4.1.311.25.2.1 [0] OCTET STRING sid }
  local sid=$1 n=${#1} hex=""
  hex=$(printf '%s' "$sid" | od -An -tx1 | tr -d ' \n')
  printf '30%02xa0%02x060a2b060104018237190201a0%02x04%02x%s' $((n + 18)) $((n + 16)) $((n + 2)) "$n" "$hex"
}
client_ext() {  # NAME EXTRA-LINES: a client-auth extension section appended to ca.cnf
  printf '[ %s ]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\n%s\n' "$1" "$2" >> ca.cnf
}
client_ext v3_client_sid_uri "subjectAltName = @san_sam
[ san_sam ]
URI.1 = tag:microsoft.com,2022-09-14:sid:S-1-5-21-1004336348-1177238915-682003330-1105"
client_ext v3_client_sid_ext "1.3.6.1.4.1.311.25.2 = DER:$(sid_ext_der S-1-5-21-1004336348-1177238915-682003330-1106)"
client_ext v3_client_upn_sid "subjectAltName = @san_walt
[ san_walt ]
otherName.1 = 1.3.6.1.4.1.311.20.2.3;UTF8:walt@corp.demo.test
URI.1 = tag:microsoft.com,2022-09-14:sid:S-1-5-21-1004336348-1177238915-682003330-6666"
client_ext v3_client_inject "subjectAltName = otherName:1.3.6.1.4.1.311.20.2.3;UTF8:*)(uid=*, email:*)(mail=*"
sign issuing-ca sam "/C=US/O=Certgate Demo/OU=Staff/CN=sam" v3_client_sid_uri
sign issuing-ca tess "/C=US/O=Certgate Demo/OU=Staff/CN=tess" v3_client_sid_ext
sign issuing-ca walt "/C=US/O=Certgate Demo/OU=Staff/CN=walt" v3_client_upn_sid
sign issuing-ca inject "/C=US/O=Certgate Demo/OU=*)(uid=*/CN=*)(objectClass=*" v3_client_inject

root partner-root-ca "/C=DE/O=Partner Corp/CN=Partner Root CA"
sign partner-root-ca paul "/C=DE/O=Partner Corp/CN=paul" v3_client

root evil-root-ca "/C=US/O=Certgate Demo/CN=Certgate Demo Root CA"
sign evil-root-ca mallory "/C=US/O=Certgate Demo/OU=Staff/CN=mallory" v3_client

revoke issuing-ca carol
revoke root-ca revoked-issuing-ca
crl root-ca
crl issuing-ca
crl old-issuing-ca
crl revoked-issuing-ca
crl partner-root-ca
crl stale-issuing-ca -crl_lastupdate "$(ts '-10 days')" -crl_nextupdate "$(ts '-1 day')"

# What a client presents: its certificate followed by its issuing CA.
for u in alice bob carol dave erin frank alice-renewed alice-rekeyless zoe mona otto uma rita sam tess walt inject; do
  cat $u.pem issuing-ca.pem > $u-chain.pem
done
cat gina.pem old-issuing-ca.pem > gina-chain.pem
cat hank.pem revoked-issuing-ca.pem > hank-chain.pem
cat ivan.pem nocrl-issuing-ca.pem > ivan-chain.pem
cat judy.pem stale-issuing-ca.pem > judy-chain.pem
cp paul.pem paul-chain.pem
cp mallory.pem mallory-chain.pem
cat server.pem issuing-ca.pem > server-chain.pem

# alice's certificate with one signature byte flipped: parses, but the signature is wrong.
python3 - "$out" <<'PY'
import base64, sys, re
out = sys.argv[1]
pem = open(f"{out}/alice.pem").read()
der = bytearray(base64.b64decode("".join(l for l in pem.splitlines() if not l.startswith("-----"))))
der[-5] ^= 0x01
b64 = base64.encodebytes(bytes(der)).decode().replace("\n", "")
lines = [b64[i:i+64] for i in range(0, len(b64), 64)]
open(f"{out}/corrupt-sig.pem", "w").write("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n")
open(f"{out}/garbage.pem", "wb").write(b"-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n\x00\xff\xfe")
PY
cp alice.key corrupt-sig.key
cat corrupt-sig.pem issuing-ca.pem > corrupt-sig-chain.pem

# The server identity also as PKCS#12, to exercise .pfx loading.
openssl pkcs12 -export -in server.pem -inkey server.key -certfile issuing-ca.pem \
  -passout pass:demo-pfx -out server.pfx 2>/dev/null

echo "certgate: scenario PKI written to $out"
