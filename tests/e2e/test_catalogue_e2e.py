"""Every answer from one catalogue (issue 14 items 5-7): the W3C line's sc-status, sc-substatus and
sc-win32-status for a representative answer of each kind, over real sockets; a sub-CA whose EKU
leaves out clientAuth (403.16, 0x800B0110, named by `certgate verify`); a mapped user refused by
an authorization rule (401.3, win32 5). Choices: docs/status-codes.md."""
import html
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, get, mtls_site, run  # noqa: E402
from listeners import ConnectionServer, read_request  # noqa: E402

P, P_USAGE, DEAD, SILENT = free_port(), free_port(), free_port(), free_port()
TMP = tempfile.mkdtemp(prefix="certgate-catalogue-")

LIMITS = """
max_header_bytes = 4096
max_url_bytes = 200
max_body_bytes = 1000
header_timeout_ms = 500
"""

SITES = f"""
[[sites]]
name = "Main"
id = 1
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  [sites.mapping]
  enabled = true
  [[sites.mapping.one_to_one]]
  user = "azureuser"
  certificate = "@PKI@/alice.pem"
  [sites.proxy]
  connect_timeout_ms = 1000
  read_timeout_ms = 500
  [[sites.locations]]
  path = "/readers"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  allow_users = ["someone-else"]
  [[sites.locations]]
  path = "/dead"
  backend = "http://127.0.0.1:{DEAD}"
  [[sites.locations]]
  path = "/silent"
  backend = "http://127.0.0.1:{SILENT}"

[[sites]]
name = "Other"
id = 2
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  host = "other.test"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
""" + mtls_site("Usage", P_USAGE, 3, f'trusted_cas = ["{TMP}/root.pem"]\n  revocation = "off"')

ROOT_EXT = "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n" \
           "subjectKeyIdentifier = hash\n"
CA_EXT = ROOT_EXT + "authorityKeyIdentifier = keyid:always\n"
LEAF_EXT = "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n" \
           "extendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n"
_serial = [0x7100]


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def cert(name, subject, issuer, ext, chain=()):
    """TMP/NAME.pem (+ .key, NAME-chain.pem: it and `chain`), signed by ISSUER (None: itself)."""
    path = lambda n: os.path.join(TMP, n)  # noqa: E731
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path(name + ".key"))
    with open(path(name + ".ext"), "w") as f:
        f.write("[v3]\n" + ext)
    openssl("req", "-new", "-key", path(name + ".key"), "-subj", subject, "-out", path(name + ".csr"))
    _serial[0] += 1
    sign = ["-signkey", path(name + ".key")] if issuer is None else \
        ["-CA", path(issuer + ".pem"), "-CAkey", path(issuer + ".key")]
    openssl("x509", "-req", "-in", path(name + ".csr"), *sign, "-set_serial", str(_serial[0]), "-days", "30",
            "-sha256", "-extfile", path(name + ".ext"), "-extensions", "v3", "-out", path(name + ".pem"))
    with open(path(name + "-chain.pem"), "w") as out:
        for part in (name, *chain):
            with open(path(part + ".pem")) as f:
                out.write(f.read())


def make_pki():
    cert("root", "/O=Catalogue Test/CN=Catalogue Root", None, ROOT_EXT)
    cert("serverca", "/O=Catalogue Test/CN=Server-only Sub CA", "root",
         CA_EXT + "extendedKeyUsage = serverAuth\n")
    cert("clientca", "/O=Catalogue Test/CN=Client Sub CA", "root", CA_EXT + "extendedKeyUsage = clientAuth\n")
    cert("blocked", "/O=Catalogue Test/CN=blocked", "serverca", LEAF_EXT, chain=["serverca"])
    cert("passes", "/O=Catalogue Test/CN=passes", "clientca", LEAF_EXT, chain=["clientca"])


class Silent(ConnectionServer):
    """A backend that reads the request and never answers (until the test ends)."""

    def __init__(self, port):
        super().__init__(port)
        self.done = threading.Event()

    def serve(self, conn):
        with conn:
            read_request(conn.makefile("rb"))
            self.done.wait(30)


server = None
silent = None


def setUpModule():
    global server, silent
    make_pki()
    silent = Silent(SILENT)
    silent.start()
    server = Server(SITES, server_extra=LIMITS, threads=1)
    os.makedirs(os.path.join(server.dir, "www", "nodefault"))
    with open(os.path.join(server.dir, "www", "nodefault", "file.txt"), "w") as f:
        f.write("x\n")
    server.start()


def tearDownModule():
    silent.done.set()
    silent.stop()
    assert server.stop() == 0
    shutil.rmtree(TMP, ignore_errors=True)


def triple(e):
    return e["sc-status"], e["sc-substatus"], e["sc-win32-status"]


def last_with_status(status, site_id=1, timeout=3.0):
    """The last W3C line answered with `status`: for requests refused before their target was read
    (the log is written off the request loop, so it may come a little later)."""
    deadline = time.time() + timeout
    while True:
        fields, found = None, []
        for line in server.log_lines(site_id):
            if line.startswith("#Fields: "):
                fields = line[len("#Fields: "):].split(" ")
            elif not line.startswith("#") and fields:
                e = dict(zip(fields, line.split(" ")))
                if e["sc-status"] == str(status):
                    found.append(e)
        if found:
            return found[-1]
        if time.time() > deadline:
            raise AssertionError(f"no W3C line with status {status}: {server.log_lines(site_id)}")
        time.sleep(0.1)


def raw_exchange(data, timeout=10):
    """Sends `data` over a fresh TLS connection to the main site; the answer's status code."""
    c = Connection(P, timeout=timeout)
    try:
        c.sock.sendall(data)
        line = c.file.readline().decode("latin-1")
        return int(line.split(" ")[1])
    finally:
        c.close()


class Catalogue(unittest.TestCase):
    """Each row: a request, the answer's status, and the W3C triple the catalogue gives it."""

    def logged(self, query, site_id=1):
        return triple(server.log_entry(query, site_id))

    def test_bad_target_is_400_0_0(self):
        # A path that climbs above the root cannot be normalised.
        self.assertEqual(raw_exchange(b"GET /../../etc/passwd?bad400 HTTP/1.1\r\nHost: localhost\r\n\r\n"), 400)
        self.assertEqual(self.logged("bad400"), ("400", "0", "0"))

    def test_missing_file_is_404_0_2(self):
        r = get(P, "/no-such-file.txt?nf404")
        self.assertEqual(r.code(), "404")
        self.assertEqual(self.logged("nf404"), ("404", "0", "2"))

    def test_hidden_segment_is_404_8_0(self):
        r = get(P, "/.git/config?hidden")
        self.assertEqual(r.code(), "404.8")
        self.assertEqual(self.logged("hidden"), ("404", "8", "0"))

    def test_post_to_static_file_is_405_0_1(self):
        r = get(P, "/data.txt?post405", method="POST", body=b"x")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers["allow"], "GET, HEAD")
        self.assertEqual(self.logged("post405"), ("405", "0", "1"))

    def test_folder_without_default_document_is_403_14_0(self):
        r = get(P, "/nodefault/?list")
        self.assertEqual(r.code(), "403.14")
        self.assertEqual(self.logged("list"), ("403", "14", "0"))

    def test_range_beyond_the_end_is_416_0_0(self):
        r = get(P, "/data.txt?range416", headers={"Range": "bytes=50-60"})
        self.assertEqual(r.status, 416)
        self.assertEqual(self.logged("range416"), ("416", "0", "0"))

    def test_body_over_max_body_bytes_is_413_0_0(self):
        status = raw_exchange(b"POST /data.txt?big413 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n\r\n")
        self.assertEqual(status, 413)
        self.assertEqual(triple(last_with_status(413)), ("413", "0", "0"))

    def test_long_target_is_414_0_0(self):
        status = raw_exchange(b"GET /?long414&" + b"a" * 300 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertEqual(status, 414)
        self.assertEqual(self.logged("long414&" + "a" * 300), ("414", "0", "0"))

    def test_host_of_another_site_is_421_0_0(self):
        c = Connection(P)
        try:
            r = c.request("/?misdirected", host="other.test")
        finally:
            c.close()
        self.assertEqual(r.status, 421)
        self.assertEqual(self.logged("misdirected"), ("421", "0", "0"))

    def test_head_over_max_header_bytes_is_431_0_0(self):
        status = raw_exchange(b"GET /?big431 HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"p" * 5000 + b"\r\n\r\n")
        self.assertEqual(status, 431)
        self.assertEqual(triple(last_with_status(431)), ("431", "0", "0"))

    def test_head_not_arriving_in_time_is_408_0_0(self):
        # header_timeout_ms = 500: the request line arrives, the rest of the head never does.
        status = raw_exchange(b"GET /?slow408 HTTP/1.1\r\nHost: localhost\r\n")
        self.assertEqual(status, 408)
        self.assertEqual(triple(last_with_status(408)), ("408", "0", "0"))

    def test_backend_refusing_is_502_3_12029(self):
        r = get(P, "/dead/?down502")
        self.assertEqual(r.code(), "502.3")
        self.assertIn("Bad Gateway: forwarder connection error", r.text)
        self.assertEqual(self.logged("down502"), ("502", "3", "12029"))

    def test_backend_not_answering_is_504_0_12002(self):
        r = get(P, "/silent/?silent504")
        self.assertEqual(r.status, 504)
        self.assertEqual(self.logged("silent504"), ("504", "0", "12002"))


class AuthorizationRefusal(unittest.TestCase):
    def test_mapped_user_refused_by_a_rule_is_401_3_5(self):
        r = get(P, "/readers/?acl401", user="alice")
        self.assertEqual(r.code(), "401.3")
        self.assertIn("Unauthorized due to ACL on resource", r.text)
        self.assertIn("user 'azureuser' is not allowed by the authorization rules", html.unescape(r.text))
        self.assertNotIn("www-authenticate", r.headers)  # no Basic on this site: nothing to offer
        e = server.log_entry("acl401")
        self.assertEqual(triple(e) + (e["cs-username"],), ("401", "3", "5", "azureuser"))


class ChainUsage(unittest.TestCase):
    """A sub-CA whose EKU is serverAuth only cannot vouch for a client (as on Windows)."""

    def request(self, user, query):
        ctx = client_context(user, cert_dir=TMP)
        c = Connection(P_USAGE, context=ctx)
        try:
            return c.request("/?" + query)
        finally:
            c.close()

    def test_leaf_under_server_only_sub_ca_is_403_16_wrong_usage(self):
        r = self.request("blocked", "eku-blocked")
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertIn("chain certificate 'CN=Server-only Sub CA, O=Catalogue Test' restricts", html.unescape(r.text))
        e = server.log_entry("eku-blocked", 3)
        self.assertEqual(triple(e), ("403", "16", str(0x800B0110)))

    def test_leaf_under_client_sub_ca_is_served(self):
        r = self.request("passes", "eku-passes")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(triple(server.log_entry("eku-passes", 3)), ("200", "0", "0"))

    def test_verify_names_the_blocking_ca(self):
        r = run(["verify", "-c", server.config, "--site", "Usage", os.path.join(TMP, "blocked-chain.pem")])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("403.16 chain certificate 'CN=Server-only Sub CA, O=Catalogue Test' restricts", r.stdout)
        self.assertIn("0x800B0110", r.stdout)
        ok = run(["verify", "-c", server.config, "--site", "Usage", os.path.join(TMP, "passes-chain.pem")])
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)

    def test_explain_names_the_blocking_ca(self):
        r = run(["explain", "-c", server.config, "--site", "Usage", os.path.join(TMP, "blocked-chain.pem")])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("verdict: 403.16", r.stdout)
        self.assertIn("chain certificate 'CN=Server-only Sub CA, O=Catalogue Test' restricts", r.stdout)


if __name__ == "__main__":
    unittest.main()
