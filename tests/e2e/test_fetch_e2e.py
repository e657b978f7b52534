"""The revocation fetcher is not an attacker's tool (docs/validation.md "What is fetched, and
when"): nothing is fetched for a chain that does not verify up to a trusted issuer; one
certificate can make the server fetch only a few URLs, at most a few at once, with ldap:// on a
small pool; one chain's failure never paces another issuer's use of a URL; nothing untrusted is
cached or persisted; /metrics stays small and escapes its label values.

Real certgate, real sockets: the PKI is made here with the openssl CLI, CRLs and certificates
are served by http.server on loopback, and listeners count every connection they receive."""
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, mtls_site  # noqa: E402

WEB, TRAP, HOLD = free_port(), free_port(), free_port()
P_MAIN, P_ADMIN, P_POOL, P_POOL_ADMIN = free_port(), free_port(), free_port(), free_port()
DIR = tempfile.mkdtemp(prefix="certgate-fetch-pki-")
W = f"http://127.0.0.1:{WEB}"
T = f"http://127.0.0.1:{TRAP}"


def f(name):
    return os.path.join(DIR, name)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


CA_EXT = ("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
          "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n")
LEAF_EXT = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n")


def key(name):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f(name + ".key"))


def root(name, cn):
    key(name)
    openssl("req", "-x509", "-new", "-key", f(name + ".key"), "-subj", "/O=Fetch Demo/CN=" + cn, "-days", "30",
            "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectKeyIdentifier=hash",
            "-out", f(name + ".pem"))


serial = [0x1000]


def issue(name, cn, issuer, ext):
    key(name)
    openssl("req", "-new", "-key", f(name + ".key"), "-subj", "/O=Fetch Demo/CN=" + cn, "-out", f(name + ".csr"))
    with open(f(name + ".ext"), "w") as out:
        out.write(ext)
    serial[0] += 1
    openssl("x509", "-req", "-in", f(name + ".csr"), "-CA", f(issuer + ".pem"), "-CAkey", f(issuer + ".key"),
            "-set_serial", str(serial[0]), "-days", "30", "-sha256", "-extfile", f(name + ".ext"),
            "-out", f(name + ".pem"))


def crl(ca, out_der):
    """An empty CRL signed by `ca`, valid 30 days, as DER."""
    d = f("ca-" + ca)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "crlnumber"), "w") as out:
        out.write("1000\n")
    with open(os.path.join(d, "ca.cnf"), "w") as out:
        out.write(f"[ca]\ndefault_ca = d\n[d]\ndatabase = {d}/index.txt\ncrlnumber = {d}/crlnumber\n"
                  "default_md = sha256\ndefault_crl_days = 30\n")
    openssl("ca", "-gencrl", "-config", os.path.join(d, "ca.cnf"), "-keyfile", f(ca + ".key"),
            "-cert", f(ca + ".pem"), "-out", out_der + ".pem")
    openssl("crl", "-in", out_der + ".pem", "-outform", "DER", "-out", out_der)


def der_of(pem):
    out = subprocess.run(["openssl", "x509", "-in", pem, "-outform", "DER"], check=True, capture_output=True)
    return out.stdout


def chain(name, *parts):
    with open(f(name + "-chain.pem"), "w") as out:
        for p in parts:
            with open(f(p + ".pem")) as part:
                out.write(part.read())


def read(name):
    with open(f(name), "rb") as data:
        return data.read()


def make_pki():
    os.makedirs(DIR, exist_ok=True)
    root("root", "Fetch Root CA")
    crl("root", f("root.crl"))
    issue("issuing", "Fetch Issuing CA", "root", CA_EXT)
    issue("other", "Fetch Other CA", "root", CA_EXT)
    crl("issuing", f("issuing.crl"))
    issue("good", "good", "issuing", LEAF_EXT + f"crlDistributionPoints=URI:{W}/item8.crl\n")
    issue("good2", "good2", "issuing", LEAF_EXT + f"crlDistributionPoints=URI:{W}/item8b.crl\n")
    issue("stranger", "stranger", "other", LEAF_EXT + f"crlDistributionPoints=URI:{W}/item8b.crl\n")
    # 1 distribution point and 500 delta CRL points; 300 ldap:// delta points (a listener that
    # accepts and never answers).
    issue("fan", "fan", "issuing", LEAF_EXT + f"crlDistributionPoints=URI:{W}/fan.crl\nfreshestCRL=" +
          ",".join(f"URI:{W}/d/{i}" for i in range(500)) + "\n")
    ldap = ",".join(f"URI:ldap://127.0.0.1:{HOLD}/cn=d{i}" for i in range(300))
    issue("ldapfan", "ldapfan", "issuing", LEAF_EXT + f"crlDistributionPoints=URI:{W}/ldapfan.crl\nfreshestCRL={ldap}\n")
    # A distribution point whose URL holds '"' and '\' (openssl's config unescapes \" and \\).
    issue("quote", "quote", "issuing", LEAF_EXT + f'crlDistributionPoints=URI:{W}/q\\"x\\\\y.crl\n')
    for n in ("good", "good2", "fan", "ldapfan", "quote"):
        chain(n, n, "issuing")
    chain("stranger", "stranger", "other")

    # An attacker's PKI, trusted by nobody: every URL points at the trap listener.
    root("evil-root", "Evil Root")
    issue("evil-ca", "Evil CA", "evil-root",
          CA_EXT + f"crlDistributionPoints=URI:{T}/evil-ca.crl\nauthorityInfoAccess=caIssuers;URI:{T}/evil-root.cer\n")
    urls = (f"crlDistributionPoints=URI:{T}/evil.crl\nfreshestCRL=URI:{T}/evil-delta.crl\n"
            f"authorityInfoAccess=OCSP;URI:{T}/ocsp,caIssuers;URI:{T}/evil-ca.cer\n")
    issue("evil", "evil", "evil-ca", LEAF_EXT + urls)
    chain("evil", "evil", "evil-ca", "evil-root")
    issue("lonely", "lonely", "evil-ca", LEAF_EXT + urls)  # presented alone: its issuer from AIA
    # A fake issuer with the real issuing CA's name, naming the real distribution point; and one
    # whose CRL, signed by the fake issuer, an attacker serves.
    root("fake-ca", "Fetch Issuing CA")
    issue("fake", "fake", "fake-ca", LEAF_EXT + f"crlDistributionPoints=URI:{W}/item8.crl\n")
    chain("fake", "fake", "fake-ca")
    issue("fake2", "fake2", "fake-ca", LEAF_EXT + f"crlDistributionPoints=URI:{W}/attacker.crl\n")
    chain("fake2", "fake2", "fake-ca")
    crl("fake-ca", f("attacker.crl"))


class Listener:
    """http.server on loopback answering from `routes` (path -> bytes, else 404), counting
    connections and requests per path."""

    def __init__(self, port, routes):
        self.hits, self.connections = {}, 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                with outer.lock:
                    outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                body = routes.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        class Counting(http.server.ThreadingHTTPServer):
            request_queue_size = 1024

            def process_request(self, request, client_address):
                with outer.lock:
                    outer.connections += 1
                super().process_request(request, client_address)

            def handle_error(self, request, client_address):
                pass

        self.httpd = Counting(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self, prefix=""):
        with self.lock:
            return sum(n for p, n in self.hits.items() if p.startswith(prefix))

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Hold:
    """Accepts connections and never answers (a directory that hangs), counting them."""

    def __init__(self, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(1024)
        self.accepted, self.held = 0, []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(c)

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        except OSError:
            pass
        self.sock.close()
        for c in self.held:
            c.close()


def threads_of(pid):
    with open(f"/proc/{pid}/status") as s:
        for line in s:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def site(port, site_id, timeout_ms=2000):
    return mtls_site("Fetch", port, site_id, f'''trusted_cas = ["{f('root.pem')}"]
  crl_files = ["{f('root.crl.pem')}"]
  url_timeout_ms = {timeout_ms}''')


def request(port, name, query):
    c = Connection(port, context=client_context(name, cert_dir=DIR))
    try:
        return c.request("/?" + query)
    finally:
        c.close()


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


class Peak:
    """Samples a process's thread count in the background; `peak` is the highest seen."""

    def __init__(self, pid):
        self.pid, self.peak, self.running = pid, threads_of(pid), True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                self.peak = max(self.peak, threads_of(self.pid))
            except OSError:
                return
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak


class Fetcher(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        make_pki()
        issuing_crl = read("issuing.crl")
        cls.web = Listener(WEB, {"/item8.crl": issuing_crl, "/item8b.crl": issuing_crl, "/fan.crl": issuing_crl,
                                 "/ldapfan.crl": issuing_crl, '/q"x\\y.crl': issuing_crl,
                                 "/attacker.crl": read("attacker.crl")})
        cls.trap = Listener(TRAP, {"/evil-ca.cer": der_of(f("evil-ca.pem")),
                                   "/evil-root.cer": der_of(f("evil-root.pem"))})
        cls.hold = Hold(HOLD)
        cls.cache_dir = tempfile.mkdtemp(prefix="certgate-fetch-cache-")
        cls.server = Server(site(P_MAIN, 1), server_extra=f'cache_dir = "{cls.cache_dir}"\n'
                                                          f'admin_listen = "127.0.0.1:{P_ADMIN}"').start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.web.stop()
        cls.trap.stop()
        cls.hold.stop()
        shutil.rmtree(DIR, ignore_errors=True)
        shutil.rmtree(cls.cache_dir, ignore_errors=True)

    def call(self, name):
        q = f"{name}-{time.monotonic_ns()}"
        r = request(P_MAIN, name, q)
        return r, self.server.log_entry(q)

    # item 6 ------------------------------------------------------------------------------------
    def test_untrusted_chain_makes_no_connection(self):
        before = self.trap.connections
        r, log = self.call("evil")  # leaf, CA and root presented; the root is trusted by nobody
        self.assertEqual(r.code(), "403.16", r.text)
        time.sleep(0.5)
        self.assertEqual(self.trap.connections, before, self.trap.hits)

    def test_aia_answer_is_not_trusted_and_names_nothing_fetched(self):
        # The leaf alone: its issuer can only come from AIA, which is asked once (paced by the
        # issuer it names); the untrusted issuer it brings is not kept and its URLs, like the
        # leaf's distribution points and OCSP responder, are never fetched.
        before = self.trap.count("/evil-ca.cer")
        for _ in range(2):
            r, log = self.call("lonely")
            self.assertEqual(r.code(), "403.16", r.text)
        time.sleep(0.5)
        self.assertLessEqual(self.trap.count("/evil-ca.cer") - before, 1, self.trap.hits)
        for path in ("/evil.crl", "/evil-delta.crl", "/ocsp", "/evil-ca.crl", "/evil-root.cer"):
            self.assertEqual(self.trap.count(path), 0, (path, self.trap.hits))

    # item 7 ------------------------------------------------------------------------------------
    def test_many_distribution_points_make_few_fetches(self):
        r, log = self.call("fan")  # 1 distribution point + 500 delta CRL points
        self.assertEqual(r.status, 200, r.text)  # the base CRL decides; a missing delta is no delta
        time.sleep(0.5)
        fetched = self.web.count("/fan.crl") + self.web.count("/d/")
        self.assertLessEqual(fetched, 4, "revocation_urls_per_certificate = 4")
        self.assertEqual(self.web.count("/fan.crl"), 1)

    def test_many_ldap_urls_neither_crash_nor_start_a_thread_each(self):
        pid = self.server.proc.pid
        baseline = threads_of(pid)
        peak = Peak(pid)
        r, log = self.call("ldapfan")  # 300 ldap:// delta CRL points to a directory that hangs
        high = peak.stop()
        self.assertEqual(r.status, 200, r.text)
        self.assertIsNone(self.server.proc.poll(), "certgate must still run")
        self.assertLessEqual(high - baseline, 8, f"threads: {baseline} before, {high} at the peak")
        self.assertLessEqual(self.hold.accepted, 4)
        r, log = self.call("quote")  # and it still answers
        self.assertEqual(r.status, 200, r.text)

    # item 8 ------------------------------------------------------------------------------------
    def test_fake_issuer_does_not_pace_the_real_distribution_point(self):
        r, log = self.call("fake")  # a fake "Fetch Issuing CA" naming the real /item8.crl
        self.assertEqual(r.code(), "403.16", r.text)
        r, log = self.call("good")  # the next legitimate client, well within retry_seconds (30)
        self.assertEqual(r.status, 200, r.text)

    def test_another_trusted_issuer_does_not_pace_the_url_for_its_own_issuer(self):
        # A certificate of another trusted CA names the issuing CA's distribution point: the CRL
        # found there is not its issuer's, which is remembered for (URL, Other CA) only.
        r, log = self.call("stranger")
        self.assertEqual(r.code(), "403.13", r.text)
        r, log = self.call("good2")
        self.assertEqual(r.status, 200, r.text)

    # item 9 ------------------------------------------------------------------------------------
    def test_untrusted_crl_is_neither_fetched_nor_persisted(self):
        r, log = self.call("fake2")  # its distribution point serves a CRL signed by the fake CA
        self.assertEqual(r.code(), "403.16", r.text)
        time.sleep(0.5)
        persisted = []
        for root_dir, _, files in os.walk(self.cache_dir):
            for name in files:
                if name.endswith(".url"):
                    with open(os.path.join(root_dir, name)) as meta:
                        persisted.append(meta.readline().strip())
        self.assertNotIn(f"{W}/attacker.crl", persisted)
        self.assertEqual(self.web.count("/attacker.crl"), 0)

    def test_z_metrics_stay_small_and_escape_labels(self):
        self.call("fan")  # hundreds of distinct URLs named
        self.call("evil")
        r, log = self.call("quote")
        self.assertEqual(r.status, 200, r.text)
        text = metrics(P_ADMIN)
        self.assertLess(len(text), 16384, "/metrics must not grow with the URLs certificates name")
        self.assertNotIn("/d/", text)
        self.assertNotIn(f"127.0.0.1:{TRAP}", text)
        self.assertLessEqual(sum(1 for line in text.splitlines() if 'url="' in line), 2 * 64)
        self.assertIn('certgate_crl_cache_age_seconds{url="%s/q\\"x\\\\y.crl"}' % W, text)
        self.assertRegex(text, r'certgate_revocation_fetches_total\{kind="crl",result="ok"\} [1-9]')


class LdapPool(unittest.TestCase):
    """Even when one certificate may name many URLs, ldap:// fetches share a few threads."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(f("ldapfan.pem")):
            make_pki()
        cls.web = Listener(WEB, {"/ldapfan.crl": read("issuing.crl")})
        cls.hold = Hold(HOLD)
        cls.server = Server(site(P_POOL, 1, timeout_ms=300),
                            server_extra='cache_dir = ""\nrevocation_urls_per_certificate = 64\n'
                                         f'admin_listen = "127.0.0.1:{P_POOL_ADMIN}"').start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.web.stop()
        cls.hold.stop()
        shutil.rmtree(DIR, ignore_errors=True)

    def test_ldap_fetches_run_on_a_bounded_pool(self):
        pid = self.server.proc.pid
        baseline = threads_of(pid)
        peak = Peak(pid)
        r = request(P_POOL, "ldapfan", "pool")
        high = peak.stop()
        self.assertEqual(r.status, 200, r.text)
        self.assertGreater(self.hold.accepted, 8, "the directory was asked for many delta CRLs")
        self.assertLessEqual(high - baseline, 6, f"threads: {baseline} before, {high} at the peak")
        self.assertIn("certgate_revocation_fetches_in_flight 0", metrics(P_POOL_ADMIN))


class FetchTable(unittest.TestCase):
    """The fetch outcomes remembered for pacing stay within revocation_cache_entries, and
    /metrics has no series per URL, however many URLs clients' certificates name."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(f("evil-ca.pem")):
            make_pki()
        # Certificates of the untrusted CA, each presented alone and naming its own caIssuers URL.
        for i in range(30):
            issue(f"aia{i}", f"aia{i}", "evil-ca", LEAF_EXT + f"authorityInfoAccess=caIssuers;URI:{T}/aia/{i}.cer\n")
        cls.trap = Listener(TRAP, {})
        cls.server = Server(site(P_POOL, 1), server_extra='cache_dir = ""\nrevocation_cache_entries = 10\n'
                                                          f'admin_listen = "127.0.0.1:{P_POOL_ADMIN}"').start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.trap.stop()
        shutil.rmtree(DIR, ignore_errors=True)

    def test_fetch_table_and_metrics_stay_bounded(self):
        for i in range(30):
            r = request(P_POOL, f"aia{i}", f"aia{i}")
            self.assertEqual(r.code(), "403.16", r.text)
        self.assertEqual(self.trap.count("/aia/"), 30)  # AIA is asked (once each) ...
        text = metrics(P_POOL_ADMIN)
        self.assertNotIn(f"127.0.0.1:{TRAP}", text)   # ... but no series per URL
        tracked = [int(line.split()[1]) for line in text.splitlines()
                   if line.startswith("certgate_revocation_tracked_urls ")]
        self.assertEqual(len(tracked), 1, text)
        self.assertLessEqual(tracked[0], 10)


if __name__ == "__main__":
    unittest.main(verbosity=2)
