"""A hostile client against the token login (docs/token-login.md, docs/security.md "Token login: a
hostile pass"): CMS and JSON tricks, nonce abuse, cookie forging and mixing, identity headers,
injection into answers and logs, body limits. The real certgate binary, real OpenSSL (the openssl
CLI and Python's cryptography), tests/e2e/backend.py as the backend. Software keys from the test
PKI stand in for the token: the PKCS#11 route is tests/e2e/test_token_e2e.py's."""
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, pki  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils  # noqa: E402

TMP = tempfile.mkdtemp(prefix="certgate-redtoken-")
KEY = os.path.join(TMP, "cookie.key")
A, B, BACKEND = free_port(), free_port(), free_port()
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def sh(*argv, **kw):
    return subprocess.run(list(argv), check=True, capture_output=True, **kw)


def site(name, site_id, port):
    return f"""
[[sites]]
name = "{name}"
id = {site_id}
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert"]
backend = "http://127.0.0.1:{BACKEND}"
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
  [[sites.mapping.many_to_one]]
  name = "Engineering"
  user = "engineer"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "OU"
    match = "Engineering"
  [sites.token_login]
  cookie_key_file = "{KEY}"
  max_response_bytes = 16384
  [[sites.locations]]
  path = "/app"
  ssl_flags = ["Ssl", "SslRequireCert"]
  token_login = true
  [[sites.locations]]
  path = "/plain"
  ssl_flags = ["Ssl", "SslRequireCert"]
"""


def ctx(user=None):
    return client_context(user) if user else client_context()


def request(port, path, method="GET", headers=None, body=None, user=None):
    c = Connection(port, context=ctx(user))
    try:
        return c.request(path, method=method, headers=headers, body=body)
    finally:
        c.close()


def challenge(port=A):
    r = request(port, "/.certgate/token/challenge")
    assert r.status == 200, r.text
    return json.loads(r.body)["nonce"]


def post(path, ctype, body, port=A, headers=None):
    h = {"Content-Type": ctype}
    h.update(headers or {})
    return request(port, path, "POST", headers=h, body=body)


def cms(nonce, signer="bob", *extra, content=None):
    """`openssl cms -sign` over `content` (the nonce unless given), detached, DER; the issuing CA
    in the certificates unless `extra` says which."""
    data = os.path.join(TMP, "content.bin")
    with open(data, "wb") as f:
        f.write((content if content is not None else nonce).encode())
    argv = ["openssl", "cms", "-sign", "-binary", "-in", data, "-signer", pki(f"{signer}.pem"),
            "-inkey", pki(f"{signer}.key"), "-outform", "DER",
            *(extra if "-certfile" in extra else extra + ("-certfile", pki("issuing-ca.pem")))]
    return sh(*argv).stdout


def post_cms(nonce, body, port=A):
    return post(f"/.certgate/token/response?nonce={nonce}", "application/pkcs7-signature", body, port)


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def pem(path):
    with open(path) as f:
        return f.read()


def json_body(nonce, algorithm, sig, chain, **extra):
    d = {"nonce": nonce, "algorithm": algorithm, "signature": base64.b64encode(sig).decode(), "certificate_chain": chain}
    d.update(extra)
    return json.dumps(d).encode()


def es256(nonce, key_file=None):
    return load_key(key_file or pki("bob.key")).sign(nonce.encode(), ec.ECDSA(hashes.SHA256()))


BOB_CHAIN = None


def cookie_of(r):
    return r.headers["set-cookie"].split(";")[0]


def login_bob():
    n = challenge()
    r = post("/.certgate/token/response", "application/json", json_body(n, "ES256", es256(n), BOB_CHAIN))
    assert r.status == 200, r.text
    return cookie_of(r)


def backend_headers(r):
    return {k.lower(): v for k, v in json.loads(r.body)["headers"]}


server = None
backend = None


def setUpModule():
    global server, backend, BOB_CHAIN
    with open(KEY, "wb") as f:
        f.write(os.urandom(32))
    with open(os.path.join(TMP, "ext.cnf"), "w") as f:
        f.write("[v3]\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
    BOB_CHAIN = [pem(pki("bob.pem")), pem(pki("issuing-ca.pem"))]
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"), str(BACKEND),
                                os.path.join(TMP, "backend.sock")], stdout=subprocess.PIPE, text=True)
    assert backend.stdout.readline().strip() == "ready"
    server = Server(site("a", 1, A) + site("b", 2, B), threads=2)
    server.start()


def tearDownModule():
    if server:
        server.stop()
    if backend:
        backend.kill()
        backend.wait()


class Cms(unittest.TestCase):
    def test_signed_attributes_over_another_content_are_a_bad_signature(self):
        n = challenge()
        r = post_cms(n, cms(n, content="something the victim signed for someone else"))
        self.assertEqual(r.code(), "401.1", r.text)

    def test_weak_signature_digest_is_refused(self):
        # A SHA-1 (or SHA-224) digest in the SignerInfo: no TLS 1.3 handshake is signed so.
        for md in ("sha1", "sha224"):
            n = challenge()
            r = post_cms(n, cms(n, "bob", "-md", md))
            self.assertEqual(r.status, 400, md + ": " + r.text)
            self.assertIn("digest", r.text)
        n = challenge()
        self.assertEqual(post_cms(n, cms(n, "bob", "-md", "sha384")).status, 200)

    def test_two_signers_are_refused(self):
        n = challenge()
        data = os.path.join(TMP, "n.bin")
        with open(data, "w") as f:
            f.write(n)
        body = sh("openssl", "cms", "-sign", "-binary", "-in", data, "-signer", pki("bob.pem"), "-inkey", pki("bob.key"),
                  "-signer", pki("alice.pem"), "-inkey", pki("alice.key"), "-outform", "DER").stdout
        r = post_cms(n, body)
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("exactly one signer", r.text)

    def test_signer_is_found_wherever_it_sits_in_the_bag(self):
        # The intermediate first, the signer after it: the login is the signer's, not the first
        # certificate's.
        n = challenge()
        r = post_cms(n, cms(n, "bob", "-certfile", pki("issuing-ca.pem")))
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(json.loads(r.body)["user"], "staff")

    def test_attacker_leaf_and_impostor_root_is_403_16(self):
        n = challenge()
        r = post_cms(n, cms(n, "mallory", "-certfile", pki("evil-root-ca.pem")))
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertNotIn("set-cookie", r.headers)

    def test_signer_id_matching_another_certificate_is_a_bad_signature(self):
        # mallory's issuer and serial are the trusted issuing CA's: the bag's first match for the
        # signer id is that CA, whose key did not sign. Never mistaken for a login as the CA.
        n = challenge()
        r = post_cms(n, cms(n, "mallory", "-certfile", pki("issuing-ca.pem")))
        self.assertEqual(r.code(), "401.1", r.text)

    def test_embedded_content_is_refused(self):
        n = challenge()
        r = post_cms(n, cms(n, "bob", "-nodetach"))
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("detached", r.text)

    def test_ber_indefinite_length_is_read(self):
        # The outer SEQUENCE re-encoded with an indefinite length (BER, as streaming encoders write).
        n = challenge()
        der = cms(n)
        self.assertEqual(der[:2], b"\x30\x82")
        ber = b"\x30\x80" + der[4:] + b"\x00\x00"
        self.assertEqual(post_cms(n, ber).status, 200)
        n = challenge()
        self.assertEqual(post_cms(n, b"\x30\x80" + cms(n)[4:]).status, 400)  # no end-of-contents

    def test_huge_set_of_certificates_is_refused(self):
        n = challenge()
        files = os.path.join(TMP, "many.pem")
        with open(files, "w") as f:
            for u in ("alice", "carol", "dave", "erin", "frank", "zoe", "mona", "otto", "uma"):
                f.write(pem(pki(f"{u}.pem")))
        r = post_cms(n, cms(n, "bob", "-certfile", files))
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("more than 8", r.text)

    def test_nonce_in_query_must_be_the_signed_one(self):
        n1, n2 = challenge(), challenge()
        r = post_cms(n2, cms(n1))
        self.assertEqual(r.code(), "401.1", r.text)


class Json(unittest.TestCase):
    def test_duplicate_keys_never_mix_two_nonces(self):
        n1, n2 = challenge(), challenge()
        sig = base64.b64encode(es256(n1)).decode()
        chain = json.dumps(BOB_CHAIN)
        body = ('{"nonce":"%s","nonce":"%s","algorithm":"ES256","signature":"%s","certificate_chain":%s}'
                % (n1, n2, sig, chain)).encode()
        r = post("/.certgate/token/response", "application/json", body)
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("more than once", r.text)

    def test_unicode_escapes_and_numbers_and_depth(self):
        n = challenge()
        # An escaped nonce is the same nonce: the signature must still be over its characters.
        escaped = "".join("\\u%04x" % ord(c) for c in n)
        body = ('{"nonce":"%s","algorithm":"ES256","signature":"%s","certificate_chain":%s}'
                % (escaped, base64.b64encode(es256(n)).decode(), json.dumps(BOB_CHAIN))).encode()
        self.assertEqual(post("/.certgate/token/response", "application/json", body).status, 200)
        n = challenge()
        for bad in (json_body(n, "ES256", es256(n), BOB_CHAIN).replace(b'"ES256"', b"256"),
                    b'{"nonce":' + b"[" * 100 + b"]" * 100 + b"}",
                    json_body(n, "ES256", es256(n), BOB_CHAIN).replace(n.encode(), n.encode()[:-1] + b"\\u00e9")):
            r = post("/.certgate/token/response", "application/json", bad)
            self.assertEqual(r.status, 400, r.text)

    def test_algorithm_none_and_mismatched_curves(self):
        n = challenge()
        for alg in ("none", "ES384", "RS256", "PS256", "es256", "HS256"):
            r = post("/.certgate/token/response", "application/json", json_body(n, alg, es256(n), BOB_CHAIN))
            self.assertEqual(r.status, 400, alg + ": " + r.text)
        r = post("/.certgate/token/response", "application/json", json_body(n, "none", b"", BOB_CHAIN))
        self.assertEqual(r.status, 400)
        # The nonce was never spent by the refusals: the right answer still logs in.
        self.assertEqual(post("/.certgate/token/response", "application/json",
                              json_body(n, "ES256", es256(n), BOB_CHAIN)).status, 200)

    def test_high_s_and_raw_signatures_cannot_replay(self):
        n = challenge()
        r_, s_ = utils.decode_dss_signature(es256(n))
        raw = r_.to_bytes(32, "big") + s_.to_bytes(32, "big")
        self.assertEqual(post("/.certgate/token/response", "application/json",
                              json_body(n, "ES256", raw, BOB_CHAIN)).status, 200)
        # The same signature malleated (s -> n - s) and re-encoded as DER: a new signature, the same
        # spent nonce.
        other = utils.encode_dss_signature(r_, P256_N - s_)
        r = post("/.certgate/token/response", "application/json", json_body(n, "ES256", other, BOB_CHAIN))
        self.assertEqual(r.code(), "401.1", r.text)
        self.assertIn("replayed", r.text)
        n = challenge()
        r = post("/.certgate/token/response", "application/json", json_body(n, "ES256", raw[:63], BOB_CHAIN))
        self.assertEqual(r.code(), "401.1", r.text)

    def test_small_rsa_key_is_refused_like_over_tls(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        kf, cf = os.path.join(TMP, "weak.key"), os.path.join(TMP, "weak.pem")
        with open(kf, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        ext = os.path.join(TMP, "ext.cnf")
        sh("openssl", "req", "-new", "-key", kf, "-subj", "/C=US/O=Certgate Demo/OU=Staff/CN=weak", "-out", kf + ".csr")
        sh("openssl", "x509", "-req", "-in", kf + ".csr", "-CA", pki("issuing-ca.pem"), "-CAkey", pki("issuing-ca.key"),
           "-set_serial", "4242", "-days", "10", "-extfile", ext, "-extensions", "v3", "-out", cf)
        n = challenge()
        sig = key.sign(n.encode(), padding.PKCS1v15(), hashes.SHA256())
        r = post("/.certgate/token/response", "application/json",
                 json_body(n, "RS256", sig, [pem(cf), pem(pki("issuing-ca.pem"))]))
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertNotIn("set-cookie", r.headers)

    def test_pss_salt_lengths(self):
        key_file = os.path.join(TMP, "pss.key")
        cert_file = os.path.join(TMP, "pss.pem")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with open(key_file, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        sh("openssl", "req", "-new", "-key", key_file, "-subj", "/C=US/O=Certgate Demo/OU=Staff/CN=pss", "-out",
           key_file + ".csr")
        ext = os.path.join(TMP, "ext.cnf")
        sh("openssl", "x509", "-req", "-in", key_file + ".csr", "-CA", pki("issuing-ca.pem"), "-CAkey",
           pki("issuing-ca.key"), "-set_serial", "4243", "-days", "10", "-extfile", ext, "-extensions", "v3",
           "-out", cert_file)
        chain = [pem(cert_file), pem(pki("issuing-ca.pem"))]
        for salt in (0, 32, padding.PSS.MAX_LENGTH):
            n = challenge()
            sig = key.sign(n.encode(), padding.PSS(padding.MGF1(hashes.SHA256()), salt), hashes.SHA256())
            self.assertEqual(post("/.certgate/token/response", "application/json",
                                  json_body(n, "PS256", sig, chain)).status, 200, salt)
        # PKCS#1 v1.5 bytes sent as PSS, and PSS bytes as PKCS#1 v1.5: bad signatures.
        n = challenge()
        sig = key.sign(n.encode(), padding.PKCS1v15(), hashes.SHA256())
        self.assertEqual(post("/.certgate/token/response", "application/json",
                              json_body(n, "PS256", sig, chain)).code(), "401.1")


class Nonce(unittest.TestCase):
    def test_store_keys_are_only_nonces(self):
        # Anything that could reach a Redis key name or a log line is refused before the store.
        for bad in ("*", "a" * 42 + "\r", "certgate:token:" + "a" * 28, "a" * 42 + "%0a", "a" * 44):
            n = challenge()
            sig = base64.b64encode(es256(n)).decode()
            body = json.dumps({"nonce": bad, "algorithm": "ES256", "signature": sig,
                               "certificate_chain": BOB_CHAIN}).encode()
            r = post("/.certgate/token/response", "application/json", body)
            self.assertEqual(r.status, 400, repr(bad))
            r = post_cms(bad, cms(n))
            self.assertEqual(r.status, 400, repr(bad))

    def test_parallel_posts_of_one_response_have_one_winner(self):
        n = challenge()
        body = json_body(n, "ES256", es256(n), BOB_CHAIN)
        results = []

        def one():
            results.append(post("/.certgate/token/response", "application/json", body).status)
        threads = [threading.Thread(target=one) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(results), [200] + [401] * 11)


class Cookie(unittest.TestCase):
    def test_cookie_chain_tampering(self):
        name, value = login_bob().split("=", 1)
        sealed, chain = value.split("~")
        raw = base64.urlsafe_b64decode(chain + "=" * (-len(chain) % 4))
        leaf_len = (raw[0] << 8) | raw[1]
        leaf = raw[:2 + leaf_len]

        def with_chain(blob):
            return f"{name}={sealed}~" + base64.urlsafe_b64encode(blob).decode().rstrip("=")

        def der(path):
            return x509.load_pem_x509_certificate(open(path, "rb").read()).public_bytes(serialization.Encoding.DER)

        def entry(d):
            return bytes([len(d) >> 8, len(d) & 0xff]) + d
        self.assertEqual(request(A, "/app/echo", headers={"Cookie": with_chain(raw)}).status, 200)
        # Another leaf under the same MAC: the MAC names bob's leaf; the cookie is nobody's.
        mallory = entry(der(pki("alice.pem"))) + entry(der(pki("issuing-ca.pem")))
        self.assertEqual(request(A, "/app/echo", headers={"Cookie": with_chain(mallory)}).code(), "403.7")
        # Bob's leaf with an attacker's "intermediate" chain: a chain hint, validated like TLS.
        evil = leaf + entry(der(pki("evil-root-ca.pem")))
        self.assertEqual(request(A, "/app/echo", headers={"Cookie": with_chain(evil)}).code(), "403.16")
        # More certificates than a login accepts, or trailing bytes: no cookie.
        self.assertEqual(request(A, "/app/echo", headers={"Cookie": with_chain(raw + entry(der(pki("root-ca.pem"))) * 8)}).code(), "403.7")
        self.assertEqual(request(A, "/app/echo", headers={"Cookie": with_chain(raw + b"\x00")}).code(), "403.7")

    def test_cookie_of_site_a_at_site_b_and_at_other_locations(self):
        cookie = login_bob()
        self.assertEqual(request(B, "/app/echo", headers={"Cookie": cookie}).code(), "403.7")
        self.assertEqual(request(A, "/plain/echo", headers={"Cookie": cookie}).code(), "403.7")
        self.assertEqual(request(A, "/app/echo", headers={"Cookie": cookie}).status, 200)

    def test_tls_certificate_wins_and_a_bad_one_is_not_rescued(self):
        cookie = login_bob()  # staff
        r = request(A, "/app/echo", headers={"Cookie": cookie}, user="alice")  # engineer over TLS
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(backend_headers(r).get("x-remote-user"), "engineer")
        r = request(A, "/app/echo", headers={"Cookie": cookie}, user="mallory")
        self.assertEqual(r.code(), "403.16", r.text)
        r = request(A, "/app/echo", headers={"Cookie": cookie}, user="carol")
        self.assertEqual(r.code(), "403.13", r.text)

    def test_identity_headers_from_the_client_never_reach_the_backend(self):
        cookie = login_bob()
        r = request(A, "/app/echo?spoof", headers={"Cookie": cookie, "X-Remote-User": "admin",
                                                     "X-ARR-ClientCert": "forged",
                                                     "X-Remote-Auth-Type": "forged"})
        self.assertEqual(r.status, 200, r.text)
        h = backend_headers(r)
        self.assertEqual(h.get("x-remote-user"), "staff")
        self.assertNotIn("forged", json.dumps(json.loads(r.body)["headers"]))

    def test_the_session_cookie_never_reaches_the_backend(self):
        # A bearer credential for the whole site: the backend sees the identity headers, as over
        # TLS, and the application's own cookies, never certgate's.
        cookie = login_bob()
        r = request(A, "/app/echo", headers={"Cookie": f"app=1; {cookie}; certgate_cert=x.y; theme=dark"})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(backend_headers(r).get("cookie"), "app=1; theme=dark")
        r = request(A, "/app/echo", headers={"Cookie": cookie})
        self.assertNotIn("cookie", backend_headers(r))

    def test_the_cookie_is_host_only(self):
        # __Host-: a sibling subdomain cannot set a cookie of that name (no Domain, Path=/,
        # Secure), so it cannot plant an attacker's session in front of the user's.
        cookie = login_bob()
        self.assertTrue(cookie.startswith("__Host-certgate_token="), cookie)


class LoginCsrf(unittest.TestCase):
    def test_form_content_types_are_refused(self):
        # Another site's page can make a visitor's browser POST a form (urlencoded, multipart,
        # text/plain) but no other type without a CORS preflight: the attacker's own signed
        # response must not log the visitor in as the attacker.
        n = challenge()
        body = base64.b64encode(cms(n))
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
            r = post(f"/.certgate/token/response?nonce={n}", ctype, body)
            self.assertEqual(r.status, 400, ctype + ": " + r.text)
            self.assertNotIn("set-cookie", r.headers)
        r = post(f"/.certgate/token/response?nonce={n}", "application/octet-stream", body)
        self.assertEqual(r.status, 200, r.text)


class Injection(unittest.TestCase):
    def test_reasons_never_split_an_answer_or_a_log_line(self):
        n = challenge()
        body = json.dumps({"nonce": n, "x\r\nSet-Cookie: evil=1\r\n\r\n<script>": 1}).encode()
        c = Connection(A, context=ctx())
        try:
            r = c.request("/.certgate/token/response?inject", method="POST",
                          headers={"Content-Type": "application/json"}, body=body)
            self.assertEqual(r.status, 400)
            self.assertNotIn("set-cookie", r.headers)
            self.assertNotIn(b"<script>", r.body)
            # The connection is still in step: the next answer is the next request's.
            self.assertEqual(c.request("/.certgate/token/challenge").status, 200)
        finally:
            c.close()
        entry = server.log_entry("inject")
        self.assertEqual(entry["sc-status"], "400")
        self.assertFalse(any("Set-Cookie" in line for line in server.log_lines()))


class Body(unittest.TestCase):
    def test_content_length_over_the_limit_is_413(self):
        c = Connection(A, context=ctx())
        try:
            raw = (b"POST /.certgate/token/response HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 99999999\r\n\r\n")
            self.assertEqual(c.request(raw=raw).status, 413)
        finally:
            c.close()

    def test_chunked_over_the_limit_is_413(self):
        c = Connection(A, context=ctx())
        try:
            chunk = b"4000\r\n" + b"a" * 0x4000 + b"\r\n"
            raw = (b"POST /.certgate/token/response HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 2 + b"0\r\n\r\n")
            self.assertEqual(c.request(raw=raw).status, 413)
        finally:
            c.close()

    def test_both_content_length_and_chunked_is_refused(self):
        c = Connection(A, context=ctx())
        try:
            raw = (b"POST /.certgate/token/response HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            self.assertEqual(c.request(raw=raw).status, 400)
        finally:
            c.close()


class SlowBody(unittest.TestCase):
    def test_a_content_length_that_lies_is_408_and_no_login(self):
        port = free_port()
        s = Server(site("a", 1, port), server_extra="body_timeout_ms = 300\n", threads=1)
        s.start()
        try:
            n = challenge(port)
            body = json_body(n, "ES256", es256(n), BOB_CHAIN)
            c = Connection(port, context=ctx())
            try:
                raw = (b"POST /.certgate/token/response?slow HTTP/1.1\r\nHost: localhost\r\n"
                       b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (len(body) + 10)) + body
                r = c.request(raw=raw)
                self.assertEqual(r.status, 408, r.text)
                self.assertNotIn("set-cookie", r.headers)
            finally:
                c.close()
            # The nonce was not spent by the body that never ended.
            self.assertEqual(post("/.certgate/token/response", "application/json", body, port).status, 200)
        finally:
            s.stop()


class Eviction(unittest.TestCase):
    def test_flooding_challenges_evicts_but_never_lets_a_nonce_twice(self):
        port = free_port()
        s = Server(site("a", 1, port), server_extra="[server.state]\nmax_entries = 16\n", threads=1)
        s.start()
        try:
            spent = challenge(port)
            body = json_body(spent, "ES256", es256(spent), BOB_CHAIN)
            self.assertEqual(post("/.certgate/token/response", "application/json", body, port).status, 200)
            victim = challenge(port)
            c = Connection(port, context=ctx())
            try:
                for _ in range(40):  # the attacker's flood, on one keep-alive connection
                    self.assertEqual(c.request("/.certgate/token/challenge").status, 200)
            finally:
                c.close()
            # The victim's nonce was pushed out: the login fails (and the client asks again) ...
            r = post("/.certgate/token/response", "application/json",
                     json_body(victim, "ES256", es256(victim), BOB_CHAIN), port)
            self.assertEqual(r.code(), "401.1", r.text)
            self.assertIn("unknown nonce", r.text)
            # ... and the spent nonce's tombstone, pushed out too, does not make it new again.
            r = post("/.certgate/token/response", "application/json", body, port)
            self.assertEqual(r.code(), "401.1", r.text)
            self.assertEqual(post("/.certgate/token/response", "application/json",
                                  json_body(n := challenge(port), "ES256", es256(n), BOB_CHAIN), port).status, 200)
        finally:
            s.stop()


class FakeRedis:
    """A loopback listener that speaks just enough RESP to be mistaken for Redis: `mode` "silent"
    reads and never answers (Redis stuck), "ok" answers +OK to everything (an impostor or a
    proxy that lost its mind)."""

    def __init__(self, mode):
        self.mode = mode
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.talk, args=(c,), daemon=True).start()

    def talk(self, c):
        while True:
            try:
                data = c.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self.mode == "ok":
                # One +OK per command: each RESP command starts with '*'.
                c.sendall(b"+OK\r\n" * max(1, data.count(b"*") - data.count(b"\r\n*\r\n")))

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class BrokenRedis(unittest.TestCase):
    def run_with(self, mode):
        fake = FakeRedis(mode)
        state = f'[server.state]\nbackend = "redis"\nurl = "redis://127.0.0.1:{fake.port}/0"\ntimeout_ms = 300\n'
        port = free_port()
        s = Server(site("a", 1, port), server_extra=state, threads=1)
        try:
            s.start()
            return s, port, fake
        except Exception:
            fake.close()
            raise

    def test_a_silent_redis_is_503_not_a_hang(self):
        s, port, fake = self.run_with("silent")
        try:
            r = request(port, "/.certgate/token/challenge")
            self.assertEqual(r.status, 503, r.text)
            self.assertEqual(r.headers.get("retry-after"), "5")
            # A nonce this instance never managed to store is not let in either.
            n = "A" * 43
            r = post("/.certgate/token/response", "application/json", json_body(n, "ES256", es256(n), BOB_CHAIN), port)
            self.assertEqual(r.status, 503, r.text)
            self.assertNotIn("set-cookie", r.headers)
        finally:
            s.stop()
            fake.close()

    def test_a_redis_that_says_ok_to_everything_lets_nobody_in(self):
        s, port, fake = self.run_with("ok")
        try:
            n = challenge(port)  # SET ... NX answered +OK: stored, as far as certgate can tell
            r = post("/.certgate/token/response", "application/json", json_body(n, "ES256", es256(n), BOB_CHAIN), port)
            self.assertEqual(r.status, 503, r.text)
            self.assertIn("unexpected reply", r.text)
            self.assertNotIn("set-cookie", r.headers)
        finally:
            s.stop()
            fake.close()


if __name__ == "__main__":
    unittest.main()
