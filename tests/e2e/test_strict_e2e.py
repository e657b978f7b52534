"""Features that had no test that could fail (issue 14 item 10): the trusted issuer list in the
CertificateRequest (send_ca_list) and its 16 KiB warning, 403.5 from the cipher a real TLS 1.2
connection negotiated, the directory's 503 when more lookups wait than max_pending allows, and
`certgate crl fetch` refreshing the cached CRLs."""
import datetime
import http.server
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, get, mtls_site, pki, run  # noqa: E402
from listeners import Silent  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT_SUBJECT = "C = US, O = Certgate Demo, CN = Certgate Demo Root CA"


def s_client(port, *extra):
    """What `openssl s_client` prints about a TLS 1.2 handshake with the server (no certificate
    of its own: the server's CertificateRequest is still shown)."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                        "-tls1_2", *extra], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    return r.stdout


def acceptable_names(text):
    """The names listed under "Acceptable client certificate CA names", or None when the
    server sent none."""
    if "No client certificate CA names sent" in text:
        return None
    lines = text.split("Acceptable client certificate CA names\n", 1)[1].splitlines()
    names = []
    for line in lines:
        if not line or line.startswith(("Requested Signature", "Client Certificate Types", "Shared ", "Peer ", "---")):
            break
        names.append(line.strip())
    return names


def many_anchors(path, count):
    """`count` self-signed CA certificates with long names (one key: only the names matter)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    with open(path, "wb") as f:
        for i in range(count):
            name = x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Certgate Strict Test Organisation number {i:03d} of many"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "A unit whose name is long enough to fill the list"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"Certgate Strict Test Root CA number {i:03d} with a long name"),
            ])
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                    .serial_number(1000 + i).not_valid_before(now - datetime.timedelta(days=1))
                    .not_valid_after(now + datetime.timedelta(days=30))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                    .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                                 key_encipherment=False, data_encipherment=False,
                                                 key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                 encipher_only=False, decipher_only=False), critical=True)
                    .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                    .sign(key, hashes.SHA256()))
            f.write(cert.public_bytes(serialization.Encoding.PEM))


# --- send_ca_list and the 16 KiB warning ------------------------------------------------------

P_LIST, P_NOLIST, P_BIG = free_port(), free_port(), free_port()


class TrustedIssuerList(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(mtls_site("Listed", P_LIST, 1, 'trusted_cas = ["@PKI@/root-ca.pem"]\n  revocation = "off"') +
                            mtls_site("Unlisted", P_NOLIST, 2, 'trusted_cas = ["@PKI@/root-ca.pem"]\n  revocation = "off"\n'
                                      '  send_ca_list = false')).start()
        cls.big = Server(mtls_site("Big", P_BIG, 1, 'trusted_cas = ["many.pem", "@PKI@/root-ca.pem"]\n  revocation = "off"'))
        many_anchors(os.path.join(cls.big.dir, "many.pem"), 100)

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def test_certificate_request_names_the_trusted_issuers(self):
        self.assertEqual(acceptable_names(s_client(P_LIST)), [ROOT_SUBJECT])

    def test_send_ca_list_false_sends_no_names(self):
        out = s_client(P_NOLIST)
        self.assertIn("New, TLSv1.2, Cipher is ", out)  # the handshake happened
        self.assertIsNone(acceptable_names(out))
        # The certificate is still asked for, and a client sending one is served.
        c = Connection(P_NOLIST, user="alice")
        self.assertEqual(c.request("/").status, 200)
        c.close()

    def test_list_over_16_kib_is_warned_about_and_sent_whole(self):
        r = run(["check-config", "-c", self.big.config])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, r'warning: site "Big" binding 127\.0\.0\.1:\d+: the trusted issuer list sent to '
                                   r'clients is \d+ bytes \(over 16 KiB\)')
        # Never truncated: every name goes out (behaviour.md §2, Schannel event 36885).
        self.big.start()
        try:
            self.assertIn("over 16 KiB", self.big.stderr_text())
            names = acceptable_names(s_client(P_BIG))
            self.assertEqual(len(names), 101)
            self.assertIn(ROOT_SUBJECT, names)
        finally:
            self.assertEqual(self.big.stop(), 0)

    def test_list_under_16_kib_is_not_warned_about(self):
        r = run(["check-config", "-c", self.server.config])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("16 KiB", r.stderr)


# --- 403.5 from the negotiated cipher ---------------------------------------------------------

P_CIPHER, P_DEFAULT_CIPHERS = free_port(), free_port()
NULL_SUITE = "ECDHE-ECDSA-NULL-SHA"  # authenticated, not encrypted: 0 bits


def cipher_client(suite):
    ctx = client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(suite + ":@SECLEVEL=0")
    return ctx


class CipherStrength(unittest.TestCase):
    """IIS refuses an Ssl128 location over a connection whose cipher has fewer than 128 bits.
    certgate's default cipher list has none (every suite OpenSSL 3 offers at security level 2 has
    128 bits or more; 3DES, the last 112-bit one, is not even built here), so the real case
    needs an administrator's list that lowers the level, as `ciphers` allows."""

    @classmethod
    def setUpClass(cls):
        site = f'''
[[sites]]
name = "Ciphers"
id = 1
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{{port}}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "Ssl128"]
'''
        cls.weak = Server(site.replace("{port}", str(P_CIPHER)),
                          server_extra=f'ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:{NULL_SUITE}:@SECLEVEL=0"').start()
        cls.default = Server(site.replace("{port}", str(P_DEFAULT_CIPHERS))).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.weak.stop() == 0
        assert cls.default.stop() == 0

    def test_ssl128_location_over_a_null_cipher_is_403_5(self):
        c = Connection(P_CIPHER, context=cipher_client(NULL_SUITE))
        self.assertEqual((c.sock.version(), c.sock.cipher()[0], c.sock.cipher()[2]), ("TLSv1.2", NULL_SUITE, 0))
        r = c.request("/admin/?null-cipher")
        self.assertEqual(r.code(), "403.5", r.text)
        self.assertIn("0 bits", r.text)
        # The same connection elsewhere on the site: only Ssl is asked there.
        self.assertEqual(c.request("/?null-cipher-public").status, 200)
        c.close()
        e = self.weak.log_entry("null-cipher")
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"]), ("403", "5", "5"))

    def test_ssl128_location_over_a_128_bit_cipher_is_served(self):
        c = Connection(P_CIPHER, context=cipher_client("ECDHE-ECDSA-AES128-GCM-SHA256"))
        self.assertEqual(c.sock.cipher()[2], 128)
        self.assertEqual(c.request("/admin/?aes128").status, 200)
        c.close()

    def test_default_cipher_list_never_negotiates_under_128_bits(self):
        with self.assertRaises(ssl.SSLError):
            Connection(P_DEFAULT_CIPHERS, context=cipher_client(NULL_SUITE))


# --- directory: 503 beyond max_pending --------------------------------------------------------

P_DIR, LDAP_SILENT = free_port(), free_port()


class DirectoryBusy(unittest.TestCase):
    def setUp(self):
        self.ldap = Silent(LDAP_SILENT)
        self.ldap.start()
        self.addCleanup(self.ldap.stop)
        self.srv = Server(mtls_site("Dir", P_DIR, 1, 'trusted_cas = ["@PKI@/root-ca.pem"]\n  crl_files = ["@PKI@/crl"]') + f'''
  [sites.mapping]
  [sites.directory_mapping]
  url = ["ldap://127.0.0.1:{LDAP_SILENT}"]
  bind_dn = "cn=reader,dc=corp,dc=test"
  bind_password = "reader-secret"
  base_dn = "ou=people,dc=corp,dc=test"
  domain = "CORP"
  timeout_ms = 30000
  connect_timeout_ms = 1000
  pool_size = 1
  max_pending = 1
''', server_extra="shutdown_grace_ms = 200").start()

    def test_lookups_beyond_max_pending_get_503(self):
        answers = {}

        def ask(user):
            try:
                c = Connection(P_DIR, user=user, timeout=60)
                answers[user] = c.request(f"/?busy-{user}").status
                c.close()
            except socket.timeout:
                answers[user] = "hang"
            except (OSError, ConnectionError, ssl.SSLError):
                answers[user] = "closed"
        threads = {}

        def start(user):
            threads[user] = threading.Thread(target=ask, args=(user,), daemon=True)
            threads[user].start()
        # alice's lookup holds the one connection (the directory never answers)...
        start("alice")
        deadline = time.time() + 10
        while self.ldap.count() == 0:
            self.assertLess(time.time(), deadline, "the directory was never asked")
            time.sleep(0.05)
        # ...then two other certificates: one waits (max_pending = 1), the other is refused.
        start("bob")
        start("uma")
        deadline = time.time() + 10
        while not answers:
            self.assertLess(time.time(), deadline, "no lookup was refused")
            time.sleep(0.05)
        self.assertEqual(list(answers.values()), [503])
        refused = next(iter(answers))
        self.assertIn(refused, ("bob", "uma"))
        e = self.srv.log_entry(f"busy-{refused}")
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"]), ("503", "0", "0"))
        # The other two still wait for the directory; the stop closes them.
        self.assertEqual(self.srv.stop(), 0)
        for t in threads.values():
            t.join(10)
        self.assertEqual(sorted(answers.values(), key=str), [503, "closed", "closed"])


# --- certgate crl fetch -----------------------------------------------------------------------

HTTP_PORT, P_FETCH = free_port(), free_port()


class CrlFetch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.opki = tempfile.mkdtemp(prefix="certgate-strict-pki-")
        subprocess.run(["bash", os.path.join(HERE, "online_pki.sh"), cls.opki, str(HTTP_PORT), str(free_port()),
                        str(free_port()), str(free_port())], check=True)
        cls.cache_dir = tempfile.mkdtemp(prefix="certgate-strict-cache-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.opki, ignore_errors=True)
        shutil.rmtree(cls.cache_dir, ignore_errors=True)

    def serve_www(self):
        opki = self.opki

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=os.path.join(opki, "www"), **kw)

            def log_message(self, *args):
                pass
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", HTTP_PORT), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd

    def cached(self):
        """The cached CRL files, by name, as bytes."""
        folder = os.path.join(self.cache_dir, "crl")
        out = {}
        for name in sorted(os.listdir(folder)):
            if name.endswith(".crl"):
                with open(os.path.join(folder, name), "rb") as f:
                    out[name] = f.read()
        return out

    def republish_issuing_crl(self):
        ca = {**os.environ, "CADIR": os.path.join(self.opki, "ca/issuing")}
        pem = os.path.join(self.opki, "issuing-new.pem")
        subprocess.run(["openssl", "ca", "-config", os.path.join(self.opki, "ca.cnf"), "-gencrl", "-crlexts", "crl_ext",
                        "-out", pem], env=ca, check=True, capture_output=True)
        der = os.path.join(self.opki, "www", "issuing.crl")
        subprocess.run(["openssl", "crl", "-in", pem, "-outform", "DER", "-out", der], check=True)
        with open(der, "rb") as f:
            return f.read()

    def test_crl_fetch_refreshes_the_cached_crls(self):
        httpd = self.serve_www()
        try:
            srv = Server(mtls_site("Online", P_FETCH, 1, f'trusted_cas = ["{self.opki}/root.pem"]'),
                         server_extra=f'cache_dir = "{self.cache_dir}"')
            srv.start()
            c = Connection(P_FETCH, context=client_context("olga", cert_dir=self.opki))
            self.assertEqual(c.request("/").status, 200)
            c.close()
            self.assertEqual(srv.stop(), 0)
            before = self.cached()
            self.assertEqual(len(before), 2)  # the issuing CA's CRL and the root's
            new_der = self.republish_issuing_crl()
            self.assertNotIn(new_der, before.values())

            r = run(["crl", "fetch", "-c", srv.config])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertRegex(r.stdout, rf"fetched http://127\.0\.0\.1:{HTTP_PORT}/issuing\.crl: ")
            self.assertRegex(r.stdout, rf"fetched http://127\.0\.0\.1:{HTTP_PORT}/root\.crl: ")
            after = self.cached()
            self.assertEqual(after.keys(), before.keys())
            self.assertIn(new_der, after.values())  # the new CRL replaced the old one on disk
        finally:
            httpd.shutdown()
            httpd.server_close()

        # The distribution points gone: each failure is named, the status says so, the cache stays.
        r = run(["crl", "fetch", "-c", srv.config, "--timeout-ms", "2000"])
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stdout, rf"FAILED http://127\.0\.0\.1:{HTTP_PORT}/issuing\.crl: ")
        self.assertEqual(self.cached(), after)


if __name__ == "__main__":
    unittest.main()
