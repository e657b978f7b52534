"""Weak certificates (issue 13 items 17, 18): weak keys and digests, RFC 5280 profile checks and
path length, over real TLS (answer, detailed error page, W3C line), and a table of x509-limbo
style cases through `certgate verify`, each checked against `openssl verify -x509_strict`.
The certificates are made here with the openssl CLI (the scenario PKI is all strong)."""
import html
import os
import shutil
import ssl
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, free_port, mtls_site, pki, read_response, run  # noqa: E402

SECURE, LEGACY, SHALLOW, LAX = free_port(), free_port(), free_port(), free_port()
RSA_SERVER = free_port()
WEAK = tempfile.mkdtemp(prefix="certgate-weak-")

CA_EXT = """basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""
LEAF_EXT = """basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""
ROOT_EXT = """basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
# openssl x509 adds key identifiers unless told "none".
NO_AKI = LEAF_EXT.replace("authorityKeyIdentifier = keyid:always", "authorityKeyIdentifier = none")
_serial = [0x5000]


def w(name):
    return os.path.join(WEAK, name)


def openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def key(name, spec):
    alg, param = spec.split(":")
    opt = f"rsa_keygen_bits:{param}" if alg == "rsa" else f"ec_paramgen_curve:{param}"
    openssl("genpkey", "-algorithm", alg.upper(), "-pkeyopt", opt, "-out", w(name + ".key"))


def cert(name, subject, issuer=None, spec="ec:P-256", ext=LEAF_EXT, md="sha256", days=30,
         chain=()):
    """NAME.pem signed by ISSUER (None: self-signed) with the extensions `ext`; NAME-chain.pem is
    the leaf followed by `chain` (names of the certificates a client would send after it)."""
    key(name, spec)
    with open(w(name + ".ext"), "w") as f:
        f.write("[v3]\n" + ext)
    openssl("req", "-new", "-key", w(name + ".key"), "-subj", subject, "-out", w(name + ".csr"))
    _serial[0] += 1
    sign = ["-signkey", w(name + ".key")] if issuer is None else \
        ["-CA", w(issuer + ".pem"), "-CAkey", w(issuer + ".key")]
    openssl("x509", "-req", "-in", w(name + ".csr"), *sign, "-set_serial", str(_serial[0]),
            "-days", str(days), "-" + md, "-extfile", w(name + ".ext"), "-extensions", "v3",
            "-out", w(name + ".pem"))
    with open(w(name + "-chain.pem"), "w") as out:
        for part in (name, *chain):
            with open(w(part + ".pem")) as f:
                out.write(f.read())


def make_pki():
    cert("root", "/O=Weak Test/CN=Weak Test Root", ext=ROOT_EXT, days=365)
    cert("ica", "/O=Weak Test/CN=Weak Test Issuing CA", "root", ext=CA_EXT)
    cert("ica2", "/O=Weak Test/CN=Weak Test Sub CA", "ica", ext=CA_EXT)
    cert("rsaca", "/O=Weak Test/CN=Weak Test RSA CA", "root", spec="rsa:2048", ext=CA_EXT)
    cert("ca512", "/O=Weak Test/CN=Weak Test RSA-512 CA", "root", spec="rsa:512", ext=CA_EXT)
    cert("good", "/O=Weak Test/CN=good", "ica", chain=["ica"])
    cert("rsa512", "/O=Weak Test/CN=rsa512", "ica", spec="rsa:512", chain=["ica"])
    cert("rsa1024", "/O=Weak Test/CN=rsa1024", "ica", spec="rsa:1024", chain=["ica"])
    cert("rsa2048", "/O=Weak Test/CN=rsa2048", "ica", spec="rsa:2048", chain=["ica"])
    cert("under512", "/O=Weak Test/CN=under512", "ca512", chain=["ca512"])
    cert("md5", "/O=Weak Test/CN=md5", "rsaca", md="md5", chain=["rsaca"])
    cert("sha1", "/O=Weak Test/CN=sha1", "rsaca", md="sha1", chain=["rsaca"])
    cert("sha256", "/O=Weak Test/CN=sha256", "rsaca", chain=["rsaca"])
    cert("noaki", "/O=Weak Test/CN=noaki", "ica", ext=NO_AKI, chain=["ica"])
    cert("deep", "/O=Weak Test/CN=deep", "ica2", chain=["ica2", "ica"])
    # An RSA server certificate from the scenario PKI's issuing CA (the test clients trust it).
    key("rsa-server", "rsa:2048")
    with open(w("rsa-server.ext"), "w") as f:
        f.write("[v3]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, "
                "keyEncipherment\nextendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost\n")
    openssl("req", "-new", "-key", w("rsa-server.key"), "-subj", "/CN=localhost", "-out", w("rsa-server.csr"))
    openssl("x509", "-req", "-in", w("rsa-server.csr"), "-CA", pki("issuing-ca.pem"), "-CAkey",
            pki("ca/issuing-ca/ca.key"), "-set_serial", "77", "-days", "30", "-extfile", w("rsa-server.ext"),
            "-extensions", "v3", "-out", w("rsa-server.pem"))
    with open(w("rsa-server-chain.pem"), "w") as out, open(w("rsa-server.pem")) as a, \
            open(pki("issuing-ca.pem")) as b:
        out.write(a.read() + b.read())


SITES = "".join([
    mtls_site("Secure", SECURE, 1, f'trusted_cas = ["{WEAK}/root.pem"]\n  revocation = "off"'),
    mtls_site("Legacy", LEGACY, 2, f'trusted_cas = ["{WEAK}/root.pem"]\n  revocation = "off"\n'
                                   '  min_rsa_bits = 1024\n  allow_sha1 = true'),
    mtls_site("Shallow", SHALLOW, 3, f'trusted_cas = ["{WEAK}/root.pem"]\n  revocation = "off"\n'
                                     '  max_chain_depth = 1'),
    mtls_site("Lax", LAX, 4, f'trusted_cas = ["{WEAK}/root.pem"]\n  revocation = "off"\n'
                             '  x509_strict = false'),
    f"""
[[sites]]
name = "RSA server"
id = 5
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{RSA_SERVER}"
  certificate = "{WEAK}/rsa-server-chain.pem"
  key = "{WEAK}/rsa-server.key"
""",
])
SITE_IDS = {SECURE: 1, LEGACY: 2, SHALLOW: 3, LAX: 4}
server = None


def setUpModule():
    global server
    make_pki()
    server = Server(SITES).start()


def tearDownModule():
    assert server.stop() == 0
    shutil.rmtree(WEAK, ignore_errors=True)


def weak_client(user, tls_version=None):
    """A client that is willing to present a weak certificate (its own security level 0)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki("root-ca.pem"))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if tls_version == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(w(user + "-chain.pem"), w(user + ".key"))
    return ctx


def request(port, user, query, tls_version=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with weak_client(user, tls_version).wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(f"GET /?{query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        return read_response(s.makefile("rb"))


class WeakKeysAndDigests(unittest.TestCase):
    def expect(self, port, user, status, reason=None, substatus=16, win32=2148098052, tls=None):
        query = f"{user}-{port}-{tls or 'any'}"
        r = request(port, user, query, tls)
        self.assertEqual(r.status, status, r.text)
        e = server.log_entry(query, SITE_IDS[port])
        if status == 200:
            self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"]), ("200", "0", "0"))
            return r
        self.assertEqual(r.code(), f"{status}.{substatus}", r.text)
        self.assertIn(reason, html.unescape(r.text))
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"], e["cs-username"]),
                         (str(status), str(substatus), str(win32), "-"))
        return r

    def test_strong_certificates_are_accepted(self):
        for user in ("good", "rsa2048", "sha256"):
            with self.subTest(user=user):
                self.expect(SECURE, user, 200)

    def test_rsa_512_leaf_is_403_16_naming_the_key(self):
        # TLS 1.3 signs CertificateVerify with RSA-PSS, which a 512-bit key cannot do (the client
        # fails before sending anything); over TLS 1.2 (PKCS#1 v1.5) the handshake completes and
        # certgate's own check answers with a readable 403.16.
        self.expect(SECURE, "rsa512", 403, "certificate 'CN=rsa512, O=Weak Test' has a 512-bit RSA key; "
                    "this site requires at least 2048 bits (min_rsa_bits)", tls="1.2")
        self.expect(LEGACY, "rsa512", 403, "has a 512-bit RSA key; this site requires at least 1024 bits",
                    tls="1.2")

    def test_rsa_1024_leaf_is_403_16_unless_min_rsa_bits_allows_it(self):
        self.expect(SECURE, "rsa1024", 403, "certificate 'CN=rsa1024, O=Weak Test' has a 1024-bit RSA key; "
                    "this site requires at least 2048 bits (min_rsa_bits)")
        self.expect(LEGACY, "rsa1024", 200)

    def test_leaf_under_rsa_512_intermediate_is_403_16(self):
        reason = "chain certificate 'CN=Weak Test RSA-512 CA, O=Weak Test' has a 512-bit RSA key"
        self.expect(SECURE, "under512", 403, reason)
        self.expect(LEGACY, "under512", 403, reason)

    def test_md5_signed_leaf_is_403_16_everywhere(self):
        reason = "certificate 'CN=md5, O=Weak Test' is signed with MD5 (md5WithRSAEncryption)"
        self.expect(SECURE, "md5", 403, reason)
        self.expect(LEGACY, "md5", 403, reason)

    def test_sha1_signed_leaf_is_403_16_unless_allow_sha1(self):
        self.expect(SECURE, "sha1", 403, "certificate 'CN=sha1, O=Weak Test' is signed with SHA-1 "
                    "(sha1WithRSAEncryption); this site does not accept SHA-1 signatures (allow_sha1)")
        self.expect(LEGACY, "sha1", 200)


class ProfileAndDepth(unittest.TestCase):
    expect = WeakKeysAndDigests.expect

    def test_leaf_without_authority_key_identifier_is_403_16_unless_not_strict(self):
        self.expect(SECURE, "noaki", 403, "certificate 'CN=noaki, O=Weak Test': Missing Authority Key "
                    "Identifier (RFC 5280 profile check; x509_strict)")
        self.expect(LAX, "noaki", 200)

    def test_chain_deeper_than_max_chain_depth_is_403_16(self):
        self.expect(SHALLOW, "deep", 403, "certification path too long: more than 1 CA certificates "
                    "between the certificate and a trust anchor (max_chain_depth)")
        self.expect(SHALLOW, "good", 200)
        self.expect(SECURE, "deep", 200)

    def test_verify_with_a_site_matches_verify_with_the_same_options(self):
        for user, site, opts, code in (("rsa1024", "Secure", [], 1), ("rsa1024", "Legacy", ["--min-rsa-bits", "1024"], 0),
                                       ("sha1", "Secure", [], 1), ("sha1", "Legacy", ["--allow-sha1"], 0),
                                       ("md5", "Legacy", ["--min-rsa-bits", "1024", "--allow-sha1"], 1),
                                       ("noaki", "Lax", ["--no-strict"], 0), ("noaki", "Secure", [], 1),
                                       ("deep", "Shallow", ["--max-chain-depth", "1"], 1)):
            with self.subTest(user=user, site=site):
                by_site = run(["verify", "-c", server.config, "--site", site, w(user + "-chain.pem")])
                by_ca = run(["verify", "--revocation", "off", "--ca", w("root.pem"), *opts,
                             w(user + "-chain.pem")])
                self.assertEqual(by_site.returncode, code, by_site.stdout + by_site.stderr)
                self.assertEqual(by_ca.returncode, code, by_ca.stdout + by_ca.stderr)
                self.assertEqual(by_site.stdout.splitlines()[0], by_ca.stdout.splitlines()[0])
        # A command-line option also loosens or tightens a site's own setting.
        r = run(["verify", "-c", server.config, "--site", "Secure", "--allow-sha1", w("sha1-chain.pem")])
        self.assertEqual(r.returncode, 0, r.stdout)
        r = run(["verify", "-c", server.config, "--site", "Secure", "--min-rsa-bits", "100", w("good-chain.pem")])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("min-rsa-bits", r.stderr)


# x509-limbo style cases (https://x509-limbo.com, whose data set is not on this machine): each
# builds a chain, states the expected verdict, checks that `openssl verify -x509_strict
# -auth_level 2 -purpose sslclient` agrees, then that `certgate verify` gives it. The ids name the
# limbo case or category each one mirrors. (ROOT, INTERMEDIATES, LEAF) are built by build_case.
LIMBO = [
    # (id, expected_valid, builder, extra certgate verify options, extra openssl options)
    ("rfc5280::aki::leaf-missing-aki", False, "leaf_ext", [], []),
    ("rfc5280::aki::critical-aki", False, "critical_aki", [], []),
    ("rfc5280::ski::intermediate-missing-ski", False, "ica_no_ski", [], []),
    ("rfc5280::ski::critical-ski", False, "critical_ski", [], []),
    ("rfc5280::root-non-critical-basic-constraints", False, "root_bc_noncritical", [], []),
    ("rfc5280::ca-empty-subject", False, "ca_empty_subject", [], []),
    ("rfc5280::san::noncritical-with-empty-subject", False, "empty_subject_noncritical_san", [], []),
    ("rfc5280::san::critical-with-empty-subject", True, "empty_subject_critical_san", [], []),
    ("rfc5280::leaf-ku-keycertsign", False, "leaf_keycertsign", [], []),
    ("rfc5280::intermediate-missing-basic-constraints", False, "ica_no_bc", [], []),
    ("rfc5280::ca-missing-key-usage", False, "ica_no_ku", [], []),
    ("rfc5280::pathlen::intermediate-violates-pathlen-0", False, "pathlen0_violated", [], []),
    ("rfc5280::pathlen::valid-pathlen-1", True, "pathlen1_ok", [], []),
    ("rfc5280::leaf-unknown-critical-extension", False, "leaf_unknown_critical", [], []),
    ("rfc5280::validity::expired-leaf", False, "expired_leaf", [], []),
    ("rfc5280::untrusted-root", False, "untrusted_root", [], []),
    ("pathlen::max-chain-depth-1", False, "two_intermediates", ["--max-chain-depth", "1"], ["-verify_depth", "1"]),
    ("pathlen::max-chain-depth-2", True, "two_intermediates", ["--max-chain-depth", "2"], ["-verify_depth", "2"]),
    ("webpki::forbidden-p192-leaf", False, "p192_leaf", [], []),
    ("webpki::forbidden-weak-rsa-key-in-leaf", False, "rsa1024_leaf", [], []),
    ("webpki::forbidden-weak-rsa-in-root", False, "rsa1024_root", [], []),
    ("webpki::forbidden-sha1-signature", False, "sha1_leaf", [], []),
    ("client::valid-p256-chain", True, "plain", [], []),
    ("client::eku-serverauth-only", False, "serverauth_only", [], []),
]


def build_case(d, kind):
    """Writes root.pem, chain.pem (leaf first, then intermediates) into the folder `d`."""
    def c(name, subject, issuer=None, spec="ec:P-256", ext=LEAF_EXT, md="sha256", days=30, start=None):
        k = os.path.join(d, name + ".key")
        alg, param = spec.split(":")
        opt = f"rsa_keygen_bits:{param}" if alg == "rsa" else f"ec_paramgen_curve:{param}"
        openssl("genpkey", "-algorithm", alg.upper(), "-pkeyopt", opt, "-out", k)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("[v3]\n" + ext)
        openssl("req", "-new", "-key", k, "-subj", subject, "-out", os.path.join(d, name + ".csr"))
        _serial[0] += 1
        sign = ["-signkey", k] if issuer is None else \
            ["-CA", os.path.join(d, issuer + ".pem"), "-CAkey", os.path.join(d, issuer + ".key")]
        openssl("x509", "-req", "-in", os.path.join(d, name + ".csr"), *sign, "-set_serial", str(_serial[0]),
                "-days", str(days), "-" + md, "-extfile", os.path.join(d, name + ".ext"), "-extensions", "v3",
                "-out", os.path.join(d, name + ".pem"))

    root_ext, ica_ext, leaf_ext = ROOT_EXT, CA_EXT, LEAF_EXT
    root_spec, leaf_spec, leaf_md, leaf_subject = "ec:P-256", "ec:P-256", "sha256", "/CN=leaf"
    intermediates = 1
    if kind == "leaf_ext":
        leaf_ext = NO_AKI
    elif kind == "critical_aki":
        leaf_ext = LEAF_EXT.replace("authorityKeyIdentifier = keyid:always", "authorityKeyIdentifier = critical, keyid:always")
    elif kind == "ica_no_ski":
        ica_ext = CA_EXT.replace("subjectKeyIdentifier = hash", "subjectKeyIdentifier = none")
        # no key id to point at: the leaf names its issuer by name and serial instead
        leaf_ext = LEAF_EXT.replace("keyid:always", "issuer:always")
    elif kind == "critical_ski":
        ica_ext = CA_EXT.replace("subjectKeyIdentifier = hash", "subjectKeyIdentifier = critical, hash")
    elif kind == "root_bc_noncritical":
        root_ext = ROOT_EXT.replace("basicConstraints = critical, CA:TRUE", "basicConstraints = CA:TRUE")
    elif kind == "ca_empty_subject":
        pass  # handled below: the intermediate's subject is empty
    elif kind == "empty_subject_noncritical_san":
        leaf_subject, leaf_ext = "/", LEAF_EXT + "subjectAltName = email:leaf@limbo.test\n"
    elif kind == "empty_subject_critical_san":
        leaf_subject, leaf_ext = "/", LEAF_EXT + "subjectAltName = critical, email:leaf@limbo.test\n"
    elif kind == "leaf_keycertsign":
        leaf_ext = LEAF_EXT.replace("keyUsage = critical, digitalSignature", "keyUsage = critical, digitalSignature, keyCertSign")
    elif kind == "ica_no_bc":
        ica_ext = CA_EXT.replace("basicConstraints = critical, CA:TRUE\n", "")
    elif kind == "ica_no_ku":
        ica_ext = CA_EXT.replace("keyUsage = critical, keyCertSign, cRLSign\n", "")
    elif kind == "pathlen0_violated":
        ica_ext = CA_EXT.replace("CA:TRUE", "CA:TRUE, pathlen:0")
        intermediates = 2
    elif kind == "pathlen1_ok":
        ica_ext = CA_EXT.replace("CA:TRUE", "CA:TRUE, pathlen:1")
        intermediates = 2
    elif kind == "leaf_unknown_critical":
        leaf_ext = LEAF_EXT + "1.3.6.1.4.1.55738.666.1 = critical, ASN1:NULL\n"
    elif kind == "two_intermediates":
        intermediates = 2
    elif kind == "p192_leaf":
        leaf_spec = "ec:prime192v1"
    elif kind == "rsa1024_leaf":
        leaf_spec = "rsa:1024"
    elif kind == "rsa1024_root":
        root_spec = "rsa:1024"
    elif kind == "sha1_leaf":
        leaf_md = "sha1"
    elif kind == "serverauth_only":
        leaf_ext = LEAF_EXT.replace("clientAuth", "serverAuth")

    c("root", "/CN=Limbo Root", spec=root_spec, ext=root_ext, days=365)
    issuer, chain = "root", []
    for i in range(intermediates):
        subject = "/" if kind == "ca_empty_subject" else f"/CN=Limbo Intermediate {i}"
        # The first intermediate carries the case's extensions; a second one below it is plain
        # except for pathlen cases, whose lower CA just has to exist.
        c(f"ica{i}", subject, issuer, ext=ica_ext if i == 0 else CA_EXT)
        issuer = f"ica{i}"
        chain.insert(0, issuer)
    if kind == "expired_leaf":
        c("leaf", leaf_subject, issuer, spec=leaf_spec, ext=leaf_ext, md=leaf_md, days=-1)
    else:
        c("leaf", leaf_subject, issuer, spec=leaf_spec, ext=leaf_ext, md=leaf_md)
    if kind == "untrusted_root":
        c("root", "/CN=Limbo Root", spec=root_spec, ext=root_ext, days=365)  # same name, other key
    with open(os.path.join(d, "chain.pem"), "w") as out:
        for part in ["leaf", *chain]:
            with open(os.path.join(d, part + ".pem")) as f:
                out.write(f.read())
    with open(os.path.join(d, "untrusted.pem"), "w") as out:
        for part in chain:
            with open(os.path.join(d, part + ".pem")) as f:
                out.write(f.read())


class LimboStyle(unittest.TestCase):
    def test_cases_agree_with_openssl_x509_strict(self):
        for case_id, valid, kind, opts, openssl_opts in LIMBO:
            with self.subTest(case=case_id):
                d = tempfile.mkdtemp(prefix="limbo-", dir=WEAK)
                build_case(d, kind)
                ref = subprocess.run(["openssl", "verify", "-x509_strict", "-auth_level", "2", "-purpose",
                                      "sslclient", *openssl_opts, "-CAfile", os.path.join(d, "root.pem"),
                                      "-untrusted", os.path.join(d, "untrusted.pem"), os.path.join(d, "leaf.pem")],
                                     capture_output=True, text=True)
                self.assertEqual(ref.returncode == 0, valid, "openssl verify disagrees with the case: " +
                                 ref.stdout + ref.stderr)
                r = run(["verify", "--revocation", "off", "--ca", os.path.join(d, "root.pem"), *opts,
                         os.path.join(d, "chain.pem")])
                self.assertEqual(r.returncode, 0 if valid else 1, r.stdout + r.stderr)
                if not valid:
                    self.assertTrue(r.stdout.startswith("403.1"), r.stdout)


class StaticRsaKeyExchange(unittest.TestCase):
    def connect(self, cipher):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(pki("root-ca.pem"))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(cipher)
        raw = socket.create_connection(("127.0.0.1", RSA_SERVER), timeout=10)
        return ctx.wrap_socket(raw, server_hostname="localhost")

    def test_rsa_key_exchange_only_client_is_refused_with_handshake_failure_not_decrypt_error(self):
        # Static RSA key exchange used to be negotiated and then fail with decrypt_error (the
        # built-in RSA key method lacks the TLS padding); it is now simply not offered.
        with self.assertRaises(ssl.SSLError) as e:
            self.connect("AES128-GCM-SHA256").close()
        self.assertIn("HANDSHAKE_FAILURE", str(e.exception).upper())
        self.assertNotIn("DECRYPT", str(e.exception).upper())

    def test_ecdhe_rsa_over_tls12_completes(self):
        with self.connect("ECDHE-RSA-AES128-GCM-SHA256") as s:
            self.assertEqual(s.cipher()[0], "ECDHE-RSA-AES128-GCM-SHA256")
            s.sendall(b"GET /?ecdhe-rsa HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            self.assertEqual(read_response(s.makefile("rb")).status, 200)


class StaticRsaBroughtBack(unittest.TestCase):
    """`[server] ciphers` that enables static-RSA key exchange: the handshake completes (RSA keys
    leave the built-in key methods, which cannot decrypt with the TLS padding)."""

    def test_rsa_key_exchange_completes_when_the_cipher_list_allows_it(self):
        port = free_port()
        site = f"""
[[sites]]
name = "RSA kx"
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "{WEAK}/rsa-server-chain.pem"
  key = "{WEAK}/rsa-server.key"
"""
        srv = Server(site, server_extra='ciphers = "DEFAULT"').start()
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(pki("root-ca.pem"))
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers("AES128-GCM-SHA256")
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(s.cipher()[0], "AES128-GCM-SHA256")
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                self.assertEqual(read_response(s.makefile("rb")).status, 200)
            self.assertIn("built-in EC key methods (RSA: provider)", srv.stderr_text())
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_a_cipher_list_openssl_does_not_know_is_refused_at_start(self):
        srv = Server(mtls_site("X", free_port(), 1, f'trusted_cas = ["{WEAK}/root.pem"]'),
                     server_extra='ciphers = "NOT-A-CIPHER"')
        r = run(["check-config", "-c", srv.config])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn('server.ciphers: "NOT-A-CIPHER" selects no TLS 1.2 cipher', r.stdout + r.stderr)


class IndirectCrlPath(unittest.TestCase):
    def test_crl_signed_by_a_certificate_with_a_broken_path_is_a_verdict_not_a_crash(self):
        """A CRL issued under the CA's name by a separate signer whose own path fails: OpenSSL
        checks that path in a child context carrying certgate's callback (PKITS 4.4.21 and 4.14.30
        take the same route); it used to dereference missing app data and kill the process."""
        d = tempfile.mkdtemp(prefix="crlpath-", dir=WEAK)

        def c(name, subject, issuer, ext):
            k = os.path.join(d, name + ".key")
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", k)
            with open(os.path.join(d, name + ".ext"), "w") as f:
                f.write("[v3]\n" + ext)
            openssl("req", "-new", "-key", k, "-subj", subject, "-out", os.path.join(d, name + ".csr"))
            _serial[0] += 1
            sign = ["-signkey", k] if issuer is None else \
                ["-CA", os.path.join(d, issuer + ".pem"), "-CAkey", os.path.join(d, issuer + ".key")]
            openssl("x509", "-req", "-in", os.path.join(d, name + ".csr"), *sign, "-set_serial", str(_serial[0]),
                    "-days", "30", "-extfile", os.path.join(d, name + ".ext"), "-extensions", "v3",
                    "-out", os.path.join(d, name + ".pem"))

        c("root", "/CN=CRL Path Root", None, ROOT_EXT)
        c("other", "/CN=Untrusted Root", None, ROOT_EXT)
        c("ca", "/CN=CRL Path CA", "root", CA_EXT)
        c("signer", "/CN=CRL Path CA", "other", "basicConstraints = critical, CA:FALSE\n"
          "keyUsage = critical, cRLSign\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n")
        c("leaf", "/CN=crlpath", "ca", LEAF_EXT)
        with open(os.path.join(d, "ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = x\n[x]\ndatabase = index.txt\ncrlnumber = crlnumber\n"
                    "default_md = sha256\ndefault_crl_days = 30\n[crl_ext]\nauthorityKeyIdentifier = keyid:always\n")
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "crlnumber"), "w") as f:
            f.write("1000\n")
        subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-gencrl", "-keyfile", "signer.key", "-cert",
                        "signer.pem", "-crlexts", "crl_ext", "-out", "crl.pem"], cwd=d, check=True,
                       capture_output=True)
        with open(os.path.join(d, "chain.pem"), "w") as out:
            for part in ("leaf", "ca", "signer"):
                with open(os.path.join(d, part + ".pem")) as f:
                    out.write(f.read())
        r = run(["verify", "--revocation", "cache-only", "--ca", os.path.join(d, "root.pem"), "--crl",
                 os.path.join(d, "crl.pem"), os.path.join(d, "chain.pem")])
        self.assertEqual(r.returncode, 1, "exit %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        self.assertTrue(r.stdout.startswith("403.13 revocation status of 'CN=crlpath' is unknown: "
                                            "CRL path validation error"), r.stdout)


if __name__ == "__main__":
    unittest.main()
