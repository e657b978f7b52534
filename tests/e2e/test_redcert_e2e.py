"""Hostile review of the weak-certificate, hidden-segment and reload fixes (issue 13 items 13, 15,
17, 18): cases a hostile client found that the first round let through. Real binary, real TLS on
loopback; certificates are made here with the openssl CLI."""
import html
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
from harness import Connection, Server, free_port, mtls_site, pki, read_response, run  # noqa: E402

SECURE, LEGACY, SOFT, HARD = free_port(), free_port(), free_port(), free_port()
DEAD = free_port()  # nothing listens here: the CRL distribution point that cannot be reached
LATE = free_port()  # a CRL distribution point that comes up during a test
DIR = tempfile.mkdtemp(prefix="certgate-redcert-")

EXT = """[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""
_serial = [0x7000]


def d(name):
    return os.path.join(DIR, name)


def openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def dsa_key(name, p_bits, q_bits):
    openssl("genpkey", "-genparam", "-algorithm", "DSA", "-pkeyopt", f"dsa_paramgen_bits:{p_bits}",
            "-pkeyopt", f"dsa_paramgen_q_bits:{q_bits}", "-out", d(name + ".param"))
    openssl("genpkey", "-paramfile", d(name + ".param"), "-out", d(name + ".key"))


def ec_key(name):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", d(name + ".key"))


def cert(name, subject, issuer, section, chain=()):
    """NAME.pem for the existing NAME.key, signed by ISSUER (None: self-signed) with SHA-256;
    NAME-chain.pem is the leaf followed by `chain`."""
    openssl("req", "-new", "-key", d(name + ".key"), "-subj", subject, "-out", d(name + ".csr"))
    _serial[0] += 1
    sign = ["-signkey", d(name + ".key")] if issuer is None else \
        ["-CA", d(issuer + ".pem"), "-CAkey", d(issuer + ".key")]
    openssl("x509", "-req", "-in", d(name + ".csr"), *sign, "-set_serial", str(_serial[0]), "-days", "30",
            "-sha256", "-extfile", d("ext.cnf"), "-extensions", section, "-out", d(name + ".pem"))
    with open(d(name + "-chain.pem"), "w") as out:
        for part in (name, *chain):
            with open(d(part + ".pem")) as f:
                out.write(f.read())


def make_pki():
    with open(d("ext.cnf"), "w") as f:
        f.write(EXT)
    ec_key("root")
    cert("root", "/O=Redcert/CN=Redcert Root", None, "root")
    # DSA with a 2048-bit p but a 160-bit q: 80 bits of security (the subgroup's discrete log),
    # like RSA-1024, although EVP_PKEY_get_bits() says 2048. 1024/160 is the legacy size.
    dsa_key("dsa160", 2048, 160)
    cert("dsa160", "/O=Redcert/CN=dsa160", "root", "leaf")
    dsa_key("dsaca", 2048, 160)
    cert("dsaca", "/O=Redcert/CN=Redcert DSA-160 CA", "root", "ca")
    ec_key("underdsa")
    cert("underdsa", "/O=Redcert/CN=underdsa", "dsaca", "leaf", chain=["dsaca"])
    dsa_key("dsa224", 2048, 224)
    cert("dsa224", "/O=Redcert/CN=dsa224", "root", "leaf")


def short_lived(name, seconds, cdp_port=None):
    """NAME.pem valid for `seconds` from now, signed by the root, naming a CRL distribution point
    nobody answers (the cryptography package: the openssl CLI counts validity in days)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    with open(d("root.pem"), "rb") as f:
        root = x509.load_pem_x509_certificate(f.read())
    with open(d("root.key"), "rb") as f:
        root_key = serialization.load_pem_private_key(f.read(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    _serial[0] += 1
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(root.subject).public_key(key.public_key()).serial_number(_serial[0])
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(seconds=seconds))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                           critical=False)
            .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(f"http://127.0.0.1:{cdp_port or DEAD}/root.crl")], None, None, None)]),
                critical=False)
            .sign(root_key, hashes.SHA256()))
    with open(d(name + ".pem"), "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(d(name + ".key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


SITES = "".join([
    mtls_site("Secure", SECURE, 1, f'trusted_cas = ["{DIR}/root.pem"]\n  revocation = "off"'),
    mtls_site("Legacy", LEGACY, 2, f'trusted_cas = ["{DIR}/root.pem"]\n  revocation = "off"\n'
                                   '  min_rsa_bits = 1024\n  allow_sha1 = true'),
    mtls_site("Soft", SOFT, 3, f'trusted_cas = ["{DIR}/root.pem"]\n  revocation = "online"\n'
                               '  soft_fail = true\n  url_timeout_ms = 2000'),
    mtls_site("Hard", HARD, 4, f'trusted_cas = ["{DIR}/root.pem"]\n  revocation = "online"\n'
                               '  url_timeout_ms = 2000\n  retry_seconds = 30'),
])
SITE_IDS = {SECURE: 1, LEGACY: 2, SOFT: 3, HARD: 4}
server = None


def setUpModule():
    global server
    make_pki()
    server = Server(SITES, test_clock=True).start()  # expiry without sleeping: shift_clock()


def tearDownModule():
    assert server.stop() == 0
    shutil.rmtree(DIR, ignore_errors=True)


def client(user):
    """A TLS 1.2 client willing to present any certificate (its own security level 0): DSA
    client authentication exists only up to TLS 1.2."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki("root-ca.pem"))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(d(user + "-chain.pem"), d(user + ".key"))
    return ctx


def request(port, user, query):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with client(user).wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(f"GET /?{query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        return read_response(s.makefile("rb"))


class DsaSubgroupSize(unittest.TestCase):
    """A DSA key's strength is the smaller of its modulus's and half its subgroup order's
    (OpenSSL's EVP_PKEY_get_security_bits, what security level 2 judges): a 2048-bit p with a
    160-bit q is an 80-bit key. It was judged by p alone and accepted."""

    def expect(self, port, user, status, reason=None):
        query = f"{user}-{port}"
        r = request(port, user, query)
        self.assertEqual(r.status, status, r.text)
        e = server.log_entry(query, SITE_IDS[port])
        if status == 200:
            self.assertEqual(e["sc-status"], "200")
            return
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertIn(reason, html.unescape(r.text))
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"]), ("403", "16", "2148098052"))

    def test_dsa_leaf_with_160_bit_subgroup_is_403_16(self):
        self.expect(SECURE, "dsa160", 403, "certificate 'CN=dsa160, O=Redcert' has a 2048-bit DSA key "
                    "with a 160-bit subgroup (80 bits of security); this site requires 112 (min_rsa_bits 2048)")

    def test_leaf_under_dsa_ca_with_160_bit_subgroup_is_403_16(self):
        self.expect(SECURE, "underdsa", 403, "chain certificate 'CN=Redcert DSA-160 CA, O=Redcert' has a "
                    "2048-bit DSA key with a 160-bit subgroup")

    def test_dsa_with_224_bit_subgroup_is_accepted(self):
        self.expect(SECURE, "dsa224", 200)

    def test_legacy_site_accepts_what_min_rsa_bits_1024_allows(self):
        # min_rsa_bits = 1024 is the legacy setting: DSA-1024/160 strength (80 bits) is what it admits.
        self.expect(LEGACY, "dsa160", 200)

    def test_verify_agrees_with_the_server(self):
        r = run(["verify", "--ca", d("root.pem"), "--revocation", "off", d("dsa160.pem")])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("160-bit subgroup", r.stdout)
        r = run(["verify", "-c", server.config, "--site", "Secure", d("underdsa-chain.pem")])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        r = run(["verify", "--ca", d("root.pem"), "--revocation", "off", "--min-rsa-bits", "1024",
                 d("dsa160.pem")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class ExplainAgreesWithRequestFiltering(unittest.TestCase):
    """`certgate explain --path /web.config` said "200.0 OK" (exit 0) for a path the server
    answers 404.8: it skipped request filtering, and matched the path without normalizing it."""

    def test_hidden_paths_are_404_8_in_explain_as_on_the_wire(self):
        for i, path in enumerate(["/web.config", "/x/../.git/config", "/BIN/x.dll", "/%2eenv"]):
            with self.subTest(path=path):
                r = run(["explain", "-c", server.config, "--site", "Secure", "--path", path, d("dsa224.pem")])
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("verdict: 404.8", r.stdout)
                raw = socket.create_connection(("127.0.0.1", SECURE), timeout=10)
                with client("dsa224").wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(f"GET {path}?explain{i} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
                    self.assertEqual(read_response(s.makefile("rb")).code(), "404.8")
        r = run(["explain", "-c", server.config, "--site", "Secure", "--path", "/", d("dsa224.pem")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class SoftFailedResultOnAHeldConnection(unittest.TestCase):
    """A validation accepted by soft_fail (revocation status unreachable) was kept on its
    connection with no end: after the certificate expired, the client kept getting 200 for as long
    as it kept the connection busy. A successful result must end with the certificate (and the
    validation cache's other bounds), soft-failed or not."""

    def test_expired_certificate_is_refused_on_the_connection_that_soft_failed(self):
        short_lived("ephemeral", 600)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(pki("root-ca.pem"))
        ctx.load_cert_chain(d("ephemeral.pem"), d("ephemeral.key"))
        c = Connection(SOFT, context=ctx)
        try:
            r = c.request("/?soft-before")
            self.assertEqual(r.status, 200, r.text)
            self.assertIn("soft_fail", server.stderr_text())
            server.shift_clock(1200)  # the certificate expires; the connection stays open
            try:
                r = c.request("/?soft-after")
            finally:
                server.shift_clock(0)
            self.assertEqual(r.code(), "403.17", r.text)
            self.assertIn("certificate 'CN=ephemeral' expired", html.unescape(r.text))
            e = server.log_entry("soft-after", 3)
            self.assertEqual((e["sc-status"], e["sc-substatus"]), ("403", "17"))
        finally:
            c.close()


class UnknownStatusOnAHeldConnection(unittest.TestCase):
    """A refusal for an unobtainable revocation status (403.13, 0x80092013) was kept on its
    connection until a reload: after the distribution point came back, a client that kept its
    connection open stayed refused. It is asked again after retry_seconds, as on a new connection."""

    def test_refusal_ends_when_the_distribution_point_answers(self):
        import datetime
        import http.server
        import threading
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        short_lived("latecomer", 3600, cdp_port=LATE)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(pki("root-ca.pem"))
        ctx.load_cert_chain(d("latecomer.pem"), d("latecomer.key"))
        c = Connection(HARD, context=ctx)
        httpd = None
        try:
            r = c.request("/?late-before")
            self.assertEqual(r.code(), "403.13", r.text[:300])
            self.assertEqual(server.log_entry("late-before", 4)["sc-win32-status"], "2148081683")
            with open(d("root.pem"), "rb") as f:
                root = x509.load_pem_x509_certificate(f.read())
            with open(d("root.key"), "rb") as f:
                root_key = serialization.load_pem_private_key(f.read(), None)
            now = datetime.datetime.now(datetime.timezone.utc)
            crl = (x509.CertificateRevocationListBuilder().issuer_name(root.subject)
                   .last_update(now - datetime.timedelta(minutes=1)).next_update(now + datetime.timedelta(days=1))
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
                   .add_extension(x509.CRLNumber(1), critical=False)
                   .sign(root_key, hashes.SHA256()))
            os.makedirs(d("late"), exist_ok=True)
            with open(d("late/root.crl"), "wb") as f:
                f.write(crl.public_bytes(serialization.Encoding.DER))

            class Quiet(http.server.SimpleHTTPRequestHandler):
                def __init__(self, *a, **kw):
                    super().__init__(*a, directory=d("late"), **kw)

                def log_message(self, *a):
                    pass

            httpd = http.server.ThreadingHTTPServer(("127.0.0.1", LATE), Quiet)
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
            server.shift_clock(31)  # retry_seconds = 30 have passed for the server
            try:
                r = c.request("/?late-after")
            finally:
                server.shift_clock(0)
            self.assertEqual(r.status, 200, r.text[:300])
            self.assertEqual(server.log_entry("late-after", 4)["sc-status"], "200")
        finally:
            c.close()
            if httpd:
                httpd.shutdown()


if __name__ == "__main__":
    unittest.main()
