"""Token login (docs/token-login.md) end to end: a SoftHSM2 token initialised here with a key and
a certificate from the test CA, `certgate token sign` driving the login through OpenSSL's PKCS#11
engine, the real certgate binary proxying to tests/e2e/backend.py, and (for two instances) a real
redis-server on a loopback port. Every refusal is checked on its answer, its log line and W3C."""
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import CERTGATE, Connection, Server, free_port, pki  # noqa: E402

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TMP = tempfile.mkdtemp(prefix="certgate-token-")
PIN = os.path.join(TMP, "pin")
COOKIE_KEY = os.path.join(TMP, "cookie.key")
OTHER_KEY = os.path.join(TMP, "other.key")
LABEL = "certgate-test"
A, B, A2, BACKEND, PLAIN = free_port(), free_port(), free_port(), free_port(), free_port()
REDIS = free_port()


def sh(*argv, **kw):
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kw)


def make_token():
    """A SoftHSM2 token holding a P-256 key (made on the token) and its certificate, signed by the
    test issuing CA; the key never leaves the token."""
    conf = os.path.join(TMP, "softhsm2.conf")
    os.makedirs(os.path.join(TMP, "tokens"))
    with open(conf, "w") as f:
        f.write(f"directories.tokendir = {TMP}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = conf
    with open(PIN, "w") as f:
        f.write("1234\n")
    sh("softhsm2-util", "--init-token", "--free", "--label", LABEL, "--pin", "1234", "--so-pin", "5678")
    tool = ["pkcs11-tool", "--module", MODULE, "--token-label", LABEL, "--login", "--pin", "1234"]
    sh(*tool, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "tokenkey", "--id", "01")
    pub = os.path.join(TMP, "pub.der")
    sh(*tool, "--read-object", "--type", "pubkey", "--label", "tokenkey", "-o", pub)
    sh("openssl", "pkey", "-pubin", "-inform", "DER", "-in", pub, "-out", pub + ".pem")
    # Any request will do for the subject: the certificate gets the token's public key.
    sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", os.path.join(TMP, "throwaway.key"), "-subj", "/C=US/O=Certgate Demo/OU=Staff/CN=tokenuser",
       "-out", os.path.join(TMP, "t.csr"))
    ext = os.path.join(TMP, "ext.cnf")
    with open(ext, "w") as f:
        f.write("[v3]\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
    cert = os.path.join(TMP, "token.pem")
    sh("openssl", "x509", "-req", "-in", os.path.join(TMP, "t.csr"), "-CA", pki("issuing-ca.pem"),
       "-CAkey", pki("issuing-ca.key"), "-force_pubkey", pub + ".pem", "-set_serial", "0x7e57", "-days", "30",
       "-extfile", ext, "-extensions", "v3", "-out", cert)
    sh("openssl", "x509", "-in", cert, "-outform", "DER", "-out", cert + ".der")
    sh(*tool, "--write-object", cert + ".der", "--type", "cert", "--label", "tokenkey", "--id", "01")


def site(name, site_id, port, key_file=COOKIE_KEY, extra=""):
    return f"""
[[sites]]
name = "{name}"
id = {site_id}
root = "www"
ssl_flags = ["Ssl"]
backend = "http://127.0.0.1:{BACKEND}"
{extra}
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  revocation = "cache-only"
  [sites.mapping]
  [[sites.mapping.many_to_one]]
  name = "Staff"
  user = "staff"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "OU"
    match = "Staff"
  [sites.token_login]
  cookie_key_file = "{key_file}"
  nonce_lifetime_seconds = 60
  [sites.forward]
  cert_fields = true
  [[sites.locations]]
  path = "/app"
  ssl_flags = ["Ssl", "SslRequireCert"]
  token_login = true
  [[sites.locations]]
  path = "/plain"
  ssl_flags = ["Ssl", "SslRequireCert"]
"""


def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(pki("root-ca.pem"))
    return c


def request(port, path, method="GET", headers=None, body=None):
    c = Connection(port, context=ctx())
    try:
        return c.request(path, method=method, headers=headers, body=body)
    finally:
        c.close()


def token_sign(port, *extra, form="cms"):
    return subprocess.run([CERTGATE, "token", "sign", "--challenge-url", f"https://localhost:{port}/.certgate/token/challenge",
                           "--pkcs11-module", MODULE, "--token-label", LABEL, "--pin-file", PIN,
                           "--cacert", pki("root-ca.pem"), "--chain", pki("issuing-ca.pem"), "--form", form, *extra],
                          capture_output=True, text=True, timeout=60)


def signed_response(port, form="cms"):
    """A signed response made by the token but not sent: (path with query, content type, body)."""
    r = token_sign(port, "--print-response", form=form)
    assert r.returncode == 0, r.stderr
    url, ctype, body = r.stdout.split("\n")[:3]
    body += "=" * (-len(body) % 4)
    return url[url.index("/.certgate"):], ctype, base64.urlsafe_b64decode(body)


def post(port, path, ctype, body, headers=None):
    h = {"Content-Type": ctype}
    h.update(headers or {})
    return request(port, path, "POST", headers=h, body=body)


def challenge(port):
    r = request(port, "/.certgate/token/challenge")
    assert r.status == 200, r.text
    return json.loads(r.body)["nonce"]


def software_cms(user, nonce, chain=True):
    """`openssl cms -sign` with a software key from the test PKI, as token middleware would."""
    data = os.path.join(TMP, "nonce.txt")
    with open(data, "w") as f:
        f.write(nonce)
    argv = ["openssl", "cms", "-sign", "-binary", "-in", data, "-signer", pki(f"{user}.pem"), "-inkey", pki(f"{user}.key"),
            "-outform", "DER"]
    if chain:
        argv += ["-certfile", pki("issuing-ca.pem")]
    return subprocess.run(argv, check=True, capture_output=True).stdout


def make_software_cert(name, keyalg):
    """A software key and its client certificate from the test issuing CA (RSA, P-384...)."""
    key, cert = os.path.join(TMP, name + ".key"), os.path.join(TMP, name + ".pem")
    sh("openssl", "req", "-new", "-newkey", keyalg, "-nodes", "-keyout", key,
       "-subj", f"/C=US/O=Certgate Demo/OU=Staff/CN={name}", "-out", key + ".csr",
       *(["-pkeyopt", "ec_paramgen_curve:P-384"] if keyalg == "ec" else []))
    sh("openssl", "x509", "-req", "-in", key + ".csr", "-CA", pki("issuing-ca.pem"), "-CAkey", pki("issuing-ca.key"),
       "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "30", "-extfile", os.path.join(TMP, "ext.cnf"),
       "-extensions", "v3", "-out", cert)
    return key, cert


def json_login(port, key_file, cert_file, algorithm, raw_ecdsa=False):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
    nonce = challenge(port)
    with open(key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[algorithm[2:]]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        sig = key.sign(nonce.encode(), ec.ECDSA(digest))
        if raw_ecdsa:  # WebCrypto's form: r||s, each the curve's size
            r, s_ = utils.decode_dss_signature(sig)
            n = (key.curve.key_size + 7) // 8
            sig = r.to_bytes(n, "big") + s_.to_bytes(n, "big")
    elif algorithm.startswith("PS"):
        sig = key.sign(nonce.encode(), padding.PSS(padding.MGF1(digest), padding.PSS.DIGEST_LENGTH), digest)
    else:
        sig = key.sign(nonce.encode(), padding.PKCS1v15(), digest)
    chain = []
    for f in (cert_file, pki("issuing-ca.pem")):
        with open(f) as fh:
            chain.append(fh.read())
    body = json.dumps({"nonce": nonce, "algorithm": algorithm, "signature": base64.urlsafe_b64encode(sig).decode(),
                       "certificate_chain": chain}).encode()
    return post(port, "/.certgate/token/response", "application/json", body)


def backend_user(reply_body):
    headers = json.loads(reply_body)["headers"]
    return [v for k, v in headers if k.lower() == "x-remote-user"]


servers = []
backend = None


def setUpModule():
    global backend
    for tool in ("softhsm2-util", "pkcs11-tool"):
        if not shutil.which(tool):
            raise unittest.SkipTest(f"{tool} is not installed (scripts/install-deps.sh installs it)")
    make_token()
    with open(COOKIE_KEY, "wb") as f:
        f.write(os.urandom(32))
    with open(OTHER_KEY, "wb") as f:
        f.write(os.urandom(32))
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"), str(BACKEND),
                                os.path.join(TMP, "backend.sock")], stdout=subprocess.PIPE, text=True)
    assert backend.stdout.readline().strip() == "ready"


def tearDownModule():
    for s in servers:
        s.stop()
    if backend:
        backend.kill()
        backend.wait()


def start(sites, **kw):
    s = Server(sites, threads=1, **kw)
    with open(os.path.join(s.dir, "www", "index.html"), "w") as f:
        f.write("static\n")
    s.start()
    servers.append(s)
    return s


class MemoryStore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = start(site("A", 1, A) + site("B", 2, B, key_file=OTHER_KEY), test_clock=True)

    def test_login_with_the_token_and_the_backend_sees_the_user(self):
        r = token_sign(A)
        self.assertEqual(r.returncode, 0, r.stderr)
        cookie = r.stdout.strip()
        self.assertTrue(cookie.startswith("__Host-certgate_token="), cookie)
        # Without the cookie the location wants a certificate: 403.7.
        self.assertEqual(request(A, "/app/echo?nocookie").code(), "403.7")
        reply = request(A, "/app/echo?withcookie", headers={"Cookie": cookie})
        self.assertEqual(reply.status, 200, reply.text)
        self.assertEqual(backend_user(reply.body), ["staff"])
        headers = dict((k.lower(), v) for k, v in json.loads(reply.body)["headers"])
        self.assertIn("CN=tokenuser", headers.get("x-client-cert-subject", ""))
        line = self.server.log_entry("withcookie")
        self.assertEqual((line["cs-username"], line["sc-status"]), ("staff", "200"))
        # A location without token_login = true does not take the cookie.
        self.assertEqual(request(A, "/plain/echo?plain", headers={"Cookie": cookie}).code(), "403.7")
        # The login itself is logged with the user.
        self.assertIn('token login of "staff"', self.server.stderr_text())

    def test_cookie_stands_for_the_certificate_over_http2(self):
        r = token_sign(A)
        self.assertEqual(r.returncode, 0, r.stderr)
        cookie = r.stdout.strip()
        for proto, version in (("--http1.1", "1.1"), ("--http2", "2")):
            with self.subTest(protocol=proto):
                q = f"h2cookie{version}"
                out = subprocess.run(["curl", "-sS", proto, "--cacert", pki("root-ca.pem"), "--max-time", "20",
                                      "--resolve", f"localhost:{A}:127.0.0.1", "-H", f"Cookie: {cookie}",
                                      "-w", "\n%{http_code} %{http_version}", f"https://localhost:{A}/app/echo?{q}"],
                                     capture_output=True, text=True, timeout=60)
                self.assertEqual(out.returncode, 0, out.stderr)
                body, _, tail = out.stdout.rpartition("\n")
                self.assertEqual(tail, f"200 {version}", body[:300])
                self.assertEqual(backend_user(body), ["staff"])
                # The forwarded certificate fields name the cookie's certificate.
                headers = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
                self.assertIn("CN=tokenuser", headers.get("x-client-cert-subject", ""))
                line = self.server.log_entry(q)
                self.assertEqual((line["cs-username"], line["sc-status"]), ("staff", "200"))

    def test_set_cookie_attributes_and_lifetime(self):
        path, ctype, body = signed_response(A)
        r = post(A, path, ctype, body)
        self.assertEqual(r.status, 200, r.text)
        sc = r.headers["set-cookie"]
        for attr in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=3600"):
            self.assertIn(attr, sc)

    def test_json_form_with_the_token(self):
        r = token_sign(A, form="json")
        self.assertEqual(r.returncode, 0, r.stderr)
        reply = request(A, "/app/echo?json", headers={"Cookie": r.stdout.strip()})
        self.assertEqual(backend_user(reply.body), ["staff"])

    def test_json_algorithms(self):
        rsa_key, rsa_cert = make_software_cert("rsauser", "rsa:2048")
        p384_key, p384_cert = make_software_cert("p384user", "ec")
        for key, cert, alg, raw in [(rsa_key, rsa_cert, "RS256", False), (rsa_key, rsa_cert, "PS256", False),
                                    (rsa_key, rsa_cert, "RS512", False), (p384_key, p384_cert, "ES384", False),
                                    (p384_key, p384_cert, "ES384", True), (pki("bob.key"), pki("bob.pem"), "ES256", True)]:
            r = json_login(A, key, cert, alg, raw)
            self.assertEqual(r.status, 200, (alg, raw, r.text))
            self.assertIn("set-cookie", r.headers)
        # The key's own type and curve only: a P-384 key is not checked as ES256, RSA not as ES256.
        self.assertEqual(json_login(A, p384_key, p384_cert, "ES256").status, 400)
        self.assertIn("does not fit the certificate&#39;s key", json_login(A, rsa_key, rsa_cert, "ES256").text)

    def test_replayed_response_is_refused(self):
        path, ctype, body = signed_response(A)
        self.assertEqual(post(A, path, ctype, body).status, 200)
        r = post(A, path + "&replay", ctype, body)
        self.assertEqual(r.code(), "401.1")
        self.assertIn("replayed nonce", r.text)
        self.assertIn("refused: replayed nonce", self.server.stderr_text())
        line = self.server.log_entry("nonce=" + path.split("nonce=")[1] + "&replay")
        self.assertEqual((line["sc-status"], line["sc-substatus"]), ("401", "1"))

    def test_unknown_nonce_is_refused(self):
        nonce = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        r = post(A, f"/.certgate/token/response?nonce={nonce}", "application/pkcs7-signature", software_cms("bob", nonce))
        self.assertEqual(r.code(), "401.1")
        self.assertIn("unknown nonce", r.text)

    def test_expired_nonce_is_refused(self):
        path, ctype, body = signed_response(A)
        self.server.shift_clock(61)
        try:
            r = post(A, path, ctype, body)
        finally:
            self.server.shift_clock(0)
        self.assertEqual(r.code(), "401.1")
        self.assertIn("expired nonce", r.text)

    def test_nonce_of_site_a_is_refused_at_site_b(self):
        path, ctype, body = signed_response(A)
        r = post(B, path, ctype, body)
        self.assertEqual(r.code(), "401.1")
        self.assertIn("issued for another site", r.text)
        self.assertIn('refused: the nonce was issued for another site ("A")', self.server.stderr_text())

    def test_signature_by_another_key_is_refused(self):
        nonce = challenge(A)
        # bob signs, but the certificate sent is alice's: the signature is not her key's.
        cms = software_cms("bob", nonce)
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", pki("bob.key")], input=nonce.encode(),
                             capture_output=True, check=True).stdout
        with open(pki("alice.pem")) as f:
            alice = f.read()
        body = json.dumps({"nonce": nonce, "algorithm": "ES256", "signature": base64.b64encode(sig).decode(),
                           "certificate_chain": [alice]}).encode()
        r = post(A, "/.certgate/token/response", "application/json", body)
        self.assertEqual(r.code(), "401.1")
        self.assertIn("not made by the key of the certificate sent", r.text)
        # The nonce was not spent by the forgery: the right signer can still use it.
        r = post(A, f"/.certgate/token/response?nonce={nonce}", "application/pkcs7-signature", cms)
        self.assertEqual(r.status, 200, r.text)

    def test_revoked_certificate_is_403_13(self):
        nonce = challenge(A)
        r = post(A, f"/.certgate/token/response?nonce={nonce}&revoked", "application/pkcs7-signature",
                 software_cms("carol", nonce))
        self.assertEqual(r.code(), "403.13")
        self.assertNotIn("set-cookie", str(r.headers).lower())
        line = self.server.log_entry(f"nonce={nonce}&revoked")
        self.assertEqual((line["sc-status"], line["sc-substatus"]), ("403", "13"))

    def test_untrusted_and_wrong_usage_get_the_pipeline_answers(self):
        nonce = challenge(A)
        r = post(A, f"/.certgate/token/response?nonce={nonce}", "application/pkcs7-signature", software_cms("dave", nonce))
        self.assertEqual(r.code(), "403.17")  # expired certificate
        nonce = challenge(A)
        r = post(A, f"/.certgate/token/response?nonce={nonce}", "application/pkcs7-signature", software_cms("frank", nonce))
        self.assertEqual(r.code(), "403.16", r.text)  # serverAuth only

    def test_cookie_of_another_site_or_tampered_is_ignored(self):
        r = token_sign(A)
        cookie = r.stdout.strip()
        self.assertEqual(request(B, "/app/echo", headers={"Cookie": cookie}).code(), "403.7")
        name, value = cookie.split("=", 1)
        sealed, chain = value.split("~")
        tampered = name + "=" + sealed[:-2] + ("AA" if sealed[-2:] != "AA" else "BB") + "~" + chain
        self.assertEqual(request(A, "/app/echo", headers={"Cookie": tampered}).code(), "403.7")
        # The chain after the MAC'd claims is validated like any presented chain: a changed
        # intermediate (its signature bytes here) does not pass.
        tampered = name + "=" + sealed + "~" + chain[:-4] + ("AAAA" if chain[-4:] != "AAAA" else "BBBB")
        self.assertNotEqual(request(A, "/app/echo", headers={"Cookie": tampered}).status, 200)
        # Another leaf than the one the MAC names is refused outright.
        other = token_sign(A).stdout.strip()
        self.assertEqual(other.split("~")[0], cookie.split("~")[0].replace(sealed, sealed))  # same token: same leaf
        rsa_key, rsa_cert = make_software_cert("swapuser", "rsa:2048")
        r = json_login(A, rsa_key, rsa_cert, "RS256")
        swapped = name + "=" + sealed + "~" + r.headers["set-cookie"].split(";")[0].split("~")[1]
        self.assertEqual(request(A, "/app/echo", headers={"Cookie": swapped}).code(), "403.7")

    def test_malformed_bodies_are_clean_400s(self):
        nonce = challenge(A)
        q = f"/.certgate/token/response?nonce={nonce}"
        for ctype, body in [("application/pkcs7-signature", b"\x30\x82\xff\xff" + b"\x00" * 50),
                            ("application/pkcs7-signature", b"-----BEGIN CMS-----\nAAAA\n-----END CMS-----\n"),
                            ("application/pkcs7-signature", b"not base64 at all!"),
                            ("application/json", b"{"),
                            ("application/json", b'{"nonce": 1}'),
                            ("application/json", json.dumps({"nonce": nonce, "algorithm": "ES256", "signature": "AA",
                                                             "certificate_chain": ["x"] * 100000}).encode()[:60000]),
                            ("application/json", json.dumps({"nonce": nonce, "algorithm": "ES256", "signature": "AA",
                                                             "certificate_chain": ["x"] * 9}).encode()),
                            ("application/json", b"[" * 10000)]:
            r = post(A, q, ctype, body)
            self.assertEqual(r.status, 400, (body[:40], r.text))
        # The nonce survives garbage (nothing was consumed).
        r = post(A, q, "application/pkcs7-signature", software_cms("bob", nonce))
        self.assertEqual(r.status, 200, r.text)

    def test_algorithm_confusion_is_refused(self):
        nonce = challenge(A)
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", pki("bob.key")], input=nonce.encode(),
                             capture_output=True, check=True).stdout
        with open(pki("bob.pem")) as f:
            bob = f.read()
        for alg in ("RS256", "PS256", "ES384", "none", "HS256"):
            body = json.dumps({"nonce": nonce, "algorithm": alg, "signature": base64.b64encode(sig).decode(),
                               "certificate_chain": [bob]}).encode()
            r = post(A, "/.certgate/token/response", "application/json", body)
            self.assertEqual(r.status, 400, (alg, r.text))

    def test_oversized_body_is_413(self):
        nonce = challenge(A)
        # Refused on its Content-Length, before the body is read.
        c = Connection(A, context=ctx())
        try:
            r = c.request(raw=(b"POST /.certgate/token/response?nonce=" + nonce.encode() + b" HTTP/1.1\r\n"
                               b"Host: localhost\r\nContent-Type: application/pkcs7-signature\r\n"
                               b"Content-Length: 71680\r\n\r\n"))
            self.assertEqual(r.status, 413)
            self.assertIn("max_response_bytes", r.text)
        finally:
            c.close()
        # Chunked, with no Content-Length to refuse up front.
        c = Connection(A, context=ctx())
        try:
            chunk = b"\x30" * 4096
            raw = (b"POST /.certgate/token/response?nonce=" + nonce.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                   b"Content-Type: application/pkcs7-signature\r\nTransfer-Encoding: chunked\r\n\r\n" +
                   (b"1000\r\n" + chunk + b"\r\n") * 20 + b"0\r\n\r\n")
            r = c.request(raw=raw)
            self.assertEqual(r.status, 413)
        finally:
            c.close()

    def test_wrong_methods_and_paths(self):
        self.assertEqual(request(A, "/.certgate/token/challenge", "POST", body=b"").status, 405)
        self.assertEqual(request(A, "/.certgate/token/response").status, 405)
        self.assertEqual(request(A, "/.certgate/token/other").status, 404)

    def test_nonce_race_has_one_winner(self):
        path, ctype, body = signed_response(A)
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: post(A, path, ctype, body).status, range(8)))
        self.assertEqual(codes.count(200), 1, codes)
        self.assertEqual(codes.count(401), 7, codes)


class BehindATlsTerminator(unittest.TestCase):
    """A plain-HTTP binding, as behind a TLS-terminating balancer: the login works, the cookie
    stands for the certificate, but a location that requires TLS (Ssl) still gets 403.4."""

    @classmethod
    def setUpClass(cls):
        cls.server = start(f"""
[[sites]]
name = "LB"
id = 3
root = "www"
backend = "http://127.0.0.1:{BACKEND}"
  [[sites.bindings]]
  listen = "127.0.0.1:{PLAIN}"
  protocol = "http"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  revocation = "cache-only"
  [sites.mapping]
  [[sites.mapping.many_to_one]]
  name = "Staff"
  user = "staff"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "OU"
    match = "Staff"
  [sites.token_login]
  cookie_key_file = "{COOKIE_KEY}"
  [[sites.locations]]
  path = "/app"
  ssl_flags = ["SslRequireCert"]
  token_login = true
  [[sites.locations]]
  path = "/tlsonly"
  ssl_flags = ["Ssl", "SslRequireCert"]
  token_login = true
""")

    def test_plain_http_login_and_ssl_still_required(self):
        c = Connection(PLAIN, tls=False, sni="localhost")
        try:
            nonce = json.loads(c.request("/.certgate/token/challenge").body)["nonce"]
            r = c.request(f"/.certgate/token/response?nonce={nonce}", "POST",
                          headers={"Content-Type": "application/pkcs7-signature"}, body=software_cms("bob", nonce))
            self.assertEqual(r.status, 200, r.text)
            cookie = r.headers["set-cookie"].split(";")[0]
            reply = c.request("/app/echo", headers={"Cookie": cookie})
            self.assertEqual(backend_user(reply.body), ["staff"])
            self.assertEqual(c.request("/tlsonly/echo", headers={"Cookie": cookie}).code(), "403.4")
        finally:
            c.close()


class ChallengeFlood(unittest.TestCase):
    """Anyone may ask for challenges: a flood fills the memory store, but logins go on (the
    nonces nearest their expiry are dropped, never replayable)."""

    def test_flood_of_challenges_does_not_refuse_logins(self):
        port = free_port()
        server = start(site("Flood", 4, port), server_extra="[server.state]\nmax_entries = 16\n")
        first = challenge(port)
        for _ in range(40):
            challenge(port)
        r = post(port, f"/.certgate/token/response?nonce={first}", "application/pkcs7-signature",
                 software_cms("bob", first))
        self.assertEqual(r.code(), "401.1")
        self.assertIn("unknown nonce", r.text)
        nonce = challenge(port)
        r = post(port, f"/.certgate/token/response?nonce={nonce}", "application/pkcs7-signature", software_cms("bob", nonce))
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(post(port, f"/.certgate/token/response?nonce={nonce}", "application/pkcs7-signature",
                              software_cms("bob", nonce)).code(), "401.1")


class RedisStore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("redis-server"):
            raise unittest.SkipTest("redis-server is not installed (scripts/install-deps.sh installs it)")
        cls.redis = subprocess.Popen(["redis-server", "--port", str(REDIS), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", REDIS), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "redis-server did not start"
                time.sleep(0.05)
        state = f'[server.state]\nbackend = "redis"\nurl = "redis://127.0.0.1:{REDIS}/0"\ntimeout_ms = 500\n'
        # Two instances of one site (same name, same cookie key) sharing the Redis.
        cls.a = start(site("Shared", 1, A2), server_extra=state)
        cls.b = start(site("Shared", 1, free_port()), server_extra=state)
        with open(cls.b.config) as f:
            cls.b_port = int(f.read().split('listen = "127.0.0.1:')[1].split('"')[0])

    @classmethod
    def tearDownClass(cls):
        if cls.redis.poll() is None:
            cls.redis.terminate()
            cls.redis.wait()

    def test_1_nonce_from_a_consumed_at_b_once_and_replay_at_a_refused(self):
        path, ctype, body = signed_response(A2)  # the challenge comes from instance A
        r = post(self.b_port, path, ctype, body)
        self.assertEqual(r.status, 200, r.text)
        cookie = r.headers["set-cookie"].split(";")[0]
        r = post(A2, path, ctype, body)
        self.assertEqual(r.code(), "401.1")
        self.assertIn("replayed nonce", r.text)
        # The cookie made at B stands for the certificate at A too (shared key, chain inside).
        reply = request(A2, "/app/echo?fromb", headers={"Cookie": cookie})
        self.assertEqual(backend_user(reply.body), ["staff"])

    def test_2_redis_stopped_is_503_and_no_login(self):
        path, ctype, body = signed_response(A2)
        self.redis.terminate()
        self.redis.wait()
        r = post(A2, path + "&down", ctype, body)
        self.assertEqual(r.status, 503, r.text)
        self.assertIn("single-use store", r.text)
        self.assertNotIn("set-cookie", str(r.headers).lower())
        self.assertIn("token login from 127.0.0.1 refused: the single-use store", self.a.stderr_text())
        self.assertEqual(request(A2, "/.certgate/token/challenge").status, 503)
        line = self.a.log_entry("nonce=" + path.split("nonce=")[1] + "&down")
        self.assertEqual(line["sc-status"], "503")


def make_redis_tls(d):
    """A test CA, a Redis server certificate naming DNS:localhost, a client certificate for
    tls-auth-clients, and a CA nobody trusts: made here, on the fly."""
    os.makedirs(d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca in ("ca", "other-ca"):
        sh("openssl", "req", "-x509", *ec, "-keyout", f"{d}/{ca}.key", "-out", f"{d}/{ca}.pem",
           "-subj", f"/CN=certgate test {ca}", "-days", "2")
    for name, ext in (("server", "subjectAltName=DNS:localhost"), ("client", "extendedKeyUsage=clientAuth")):
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext + "\n")
        sh("openssl", "req", *ec, "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj", f"/CN={name}")
        sh("openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
           "-CAcreateserial", "-days", "2", "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.pem")


class TlsRedisStore(unittest.TestCase):
    """rediss://: two instances share a Redis that speaks only TLS and asks for client
    certificates; an instance trusting another CA is refused by its own verification (503)."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("redis-server"):
            raise unittest.SkipTest("redis-server is not installed (scripts/install-deps.sh installs it)")
        d = os.path.join(TMP, "redis-tls")
        make_redis_tls(d)
        cls.port = free_port()
        cls.redis = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(cls.port), "--bind", "127.0.0.1",
                                      "--tls-cert-file", f"{d}/server.pem", "--tls-key-file", f"{d}/server.key",
                                      "--tls-ca-cert-file", f"{d}/ca.pem", "--tls-auth-clients", "yes",
                                      "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "redis-server did not start"
                time.sleep(0.05)

        def state(ca):
            return (f'[server.state]\nbackend = "redis"\nurl = "rediss://localhost:{cls.port}/0"\ntimeout_ms = 2000\n'
                    f'ca_file = "{d}/{ca}"\nclient_certificate = "{d}/client.pem"\nclient_key = "{d}/client.key"\n')
        cls.a_port, cls.b_port, cls.c_port = free_port(), free_port(), free_port()
        try:
            cls.a = start(site("TlsShared", 1, cls.a_port), server_extra=state("ca.pem"))
            cls.b = start(site("TlsShared", 1, cls.b_port), server_extra=state("ca.pem"))
            cls.c = start(site("TlsShared", 1, cls.c_port), server_extra=state("other-ca.pem"))
        except Exception:
            cls.tearDownClass()  # unittest skips it when setUpClass fails: no Redis left behind
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.redis.poll() is None:
            cls.redis.terminate()
            cls.redis.wait()

    def test_nonce_from_a_consumed_at_b_once_and_replay_at_a_refused(self):
        nonce = challenge(self.a_port)
        path, body = f"/.certgate/token/response?nonce={nonce}", software_cms("bob", nonce)
        r = post(self.b_port, path, "application/pkcs7-signature", body)
        self.assertEqual(r.status, 200, r.text)
        r = post(self.a_port, path, "application/pkcs7-signature", body)
        self.assertEqual(r.code(), "401.1")
        self.assertIn("replayed nonce", r.text)

    def test_untrusted_redis_certificate_is_503_with_the_reason(self):
        r = request(self.c_port, "/.certgate/token/challenge")
        self.assertEqual(r.status, 503)
        self.assertIn("certificate verify failed: self-signed certificate in certificate chain", self.c.stderr_text())


if __name__ == "__main__":
    unittest.main()
