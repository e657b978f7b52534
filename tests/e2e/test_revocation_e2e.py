"""Online revocation against real servers on loopback (behaviour.md §2 revocation table;
docs/validation.md "Online revocation"): CRLs from distribution points served by a real HTTP
server, OCSP by `openssl ocsp -port`, missing issuers from AIA caIssuers; failures, limits,
soft_fail, refresh after nextUpdate, one fetch for many requests, the persisted cache used by a
restarted server in cache-only mode, `verify --urlfetch`, `crl status`, and /metrics."""
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, mtls_site, run  # noqa: E402
from slapd import SUFFIX, Slapd, entry  # noqa: E402

HTTP_PORT, OCSP_PORT, DEAD_PORT, LDAP_PORT = free_port(), free_port(), free_port(), free_port()
P_ONLINE, P_SOFT, P_ADMIN, P_FRESH, P_OCSP_FIRST = (free_port() for _ in range(5))
OPKI = tempfile.mkdtemp(prefix="certgate-online-pki-")
HERE = os.path.dirname(os.path.abspath(__file__))


def opki(name):
    return os.path.join(OPKI, name)


class CrlServer:
    """http.server on loopback serving OPKI/www, counting hits per path; /slow.crl answers after
    three seconds."""

    def __init__(self, port):
        self.hits = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=opki("www"), **kw)

            def do_GET(self):
                with outer.lock:
                    outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                if self.path == "/redirect.crl":
                    return self.redirect("/issuing.crl")
                if self.path == "/loop.crl":
                    return self.redirect("/loop.crl")
                if self.path == "/slow.crl":
                    time.sleep(3)
                if self.path == "/conny.crl":
                    time.sleep(0.5)  # long enough for all concurrent requests to be waiting
                return super().do_GET()

            def redirect(self, to):
                self.send_response(302)
                self.send_header("Location", to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Quiet(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # certgate hanging up on an oversized answer is the point, not an error

        self.httpd = Quiet(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, path):
        with self.lock:
            return self.hits.get(path, 0)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def site(name, port, site_id, extra=""):
    return mtls_site(name, port, site_id, f'''trusted_cas = ["{opki('root.pem')}"]
  url_timeout_ms = 1000
  retry_seconds = 1
  {extra}''')


def server_settings(cache_dir):
    return f'cache_dir = "{cache_dir}"\nmax_fetch_bytes = 1048576\nadmin_listen = "127.0.0.1:{P_ADMIN}"'


def request(port, name, query):
    c = Connection(port, context=client_context(name, cert_dir=OPKI))
    try:
        return c.request("/?" + query)
    finally:
        c.close()


class OnlineRevocation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run(["bash", os.path.join(HERE, "online_pki.sh"), OPKI, str(HTTP_PORT), str(OCSP_PORT),
                        str(DEAD_PORT), str(LDAP_PORT)], check=True)
        with open(opki("www/issuing.crl"), "rb") as f:
            crl_der = f.read()
        cls.ldap = Slapd(LDAP_PORT, entry(SUFFIX, ["dcObject", "organization"], dc="corp", o="Corp") +
                         entry("ou=crl," + SUFFIX, ["organizationalUnit"], ou="crl") +
                         entry("cn=issuing,ou=crl," + SUFFIX, ["cRLDistributionPoint"], cn="issuing",
                               **{"certificateRevocationList;binary": crl_der})).start()
        cls.crl = CrlServer(HTTP_PORT)
        cls.ocsp_log = opki("ocsp.log")
        cls.ocsp = subprocess.Popen(
            ["openssl", "ocsp", "-index", opki("ca/issuing/index.txt"), "-port", str(OCSP_PORT),
             "-rsigner", opki("responder.pem"), "-rkey", opki("responder.key"), "-CA", opki("issuing.pem"),
             "-nmin", "5"], stdout=open(cls.ocsp_log, "w"), stderr=subprocess.STDOUT)
        cls.cache_dir = tempfile.mkdtemp(prefix="certgate-revocation-cache-")
        cls.server = Server(site("Online", P_ONLINE, 1) + site("Soft", P_SOFT, 2, "soft_fail = true") +
                            site("Fresh", P_FRESH, 3, "freshness_seconds = 10") +
                            site("OcspFirst", P_OCSP_FIRST, 4, "prefer_ocsp = true"),
                            server_extra=server_settings(cls.cache_dir), test_clock=True).start()
        cls.offset = 0
        # openssl ocsp serves one connection at a time and waits on an empty one, so readiness
        # is read from its log rather than probed with a connection.
        deadline = time.time() + 10
        while "waiting for OCSP client connections" not in open(cls.ocsp_log).read():
            if time.time() > deadline:
                raise RuntimeError("openssl ocsp did not start: " + open(cls.ocsp_log).read())
            time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.ocsp.terminate()
        cls.ocsp.wait()
        cls.crl.stop()
        cls.ldap.cleanup()
        shutil.rmtree(OPKI, ignore_errors=True)
        shutil.rmtree(cls.cache_dir, ignore_errors=True)

    def advance(self, seconds):
        """Moves the server's clock forward (never back: the store's retry pacing and fetch times
        are stamped by it). Dates openssl writes are real time: the server is `offset` ahead."""
        type(self).offset += seconds
        self.server.shift_clock(self.offset)

    def call(self, name, port=P_ONLINE):
        q = f"{name}-{port}-{time.monotonic_ns()}"
        r = request(port, name, q)
        return r, self.server.log_entry(q, site_id={P_ONLINE: 1, P_SOFT: 2, P_FRESH: 3, P_OCSP_FIRST: 4}[port])

    def assertStatus(self, r, log, code, win32):
        self.assertEqual(r.code(), code, r.text)
        self.assertEqual(log["sc-win32-status"], str(win32), log)

    # CRLs --------------------------------------------------------------------------------------
    def test_good_and_revoked_leaf_by_distribution_point(self):
        r, log = self.call("olga")
        self.assertStatus(r, log, "200", 0)
        r, log = self.call("oscar")
        self.assertStatus(r, log, "403.13", 2148081680)
        self.assertIn("CRL http://127.0.0.1:%d/issuing.crl" % HTTP_PORT, r.text)

    def test_revoked_intermediate_via_the_roots_crl(self):
        r, log = self.call("ronald")
        self.assertStatus(r, log, "403.13", 2148081680)
        self.assertIn("Online Revoked CA", r.text)
        self.assertIn("root.crl", r.text)

    def test_unreachable_distribution_point_is_unknown_unless_soft_fail(self):
        r, log = self.call("dora")
        self.assertStatus(r, log, "403.13", 2148081683)
        self.assertIn("Connection refused", r.text)
        r, log = self.call("dora", P_SOFT)
        # Served, and the W3C line keeps CRYPT_E_REVOCATION_OFFLINE (docs/status-codes.md).
        self.assertStatus(r, log, "200", 2148081683)
        self.assertIn("soft_fail", self.server.stderr_text())

    def test_slow_distribution_point_times_out(self):
        started = time.time()
        r, log = self.call("sloane")
        self.assertLess(time.time() - started, 2.5, "url_timeout_ms = 1000 must bound the wait")
        self.assertStatus(r, log, "403.13", 2148081683)
        self.assertIn("timed out after 1000 ms", r.text)

    def test_oversized_crl_is_refused(self):
        r, log = self.call("bigsby")
        self.assertStatus(r, log, "403.13", 2148081683)
        self.assertIn("larger than 1048576 bytes", r.text)

    def test_crl_signed_by_another_key_is_refused(self):
        r, log = self.call("wendy")
        self.assertStatus(r, log, "403.13", 2148081683)
        self.assertIn("signature does not verify", r.text)

    def test_crl_from_an_ldap_distribution_point(self):
        r, log = self.call("lars")
        self.assertStatus(r, log, "200", 0)
        self.assertEqual(self.ldap.searches("objectClass=*"), 1)

    def test_redirects_are_followed_and_limited(self):
        r, log = self.call("remy")  # /redirect.crl → /issuing.crl
        self.assertStatus(r, log, "200", 0)
        r, log = self.call("lou")   # /loop.crl → /loop.crl → ...: stops at max_fetch_redirects (3)
        self.assertStatus(r, log, "403.13", 2148081683)
        self.assertIn("more than 3 redirects", r.text)
        self.assertEqual(self.crl.count("/loop.crl"), 4)

    def ocsp_requests(self):
        return open(self.ocsp_log).read().count("Received request")

    def test_prefer_ocsp_asks_the_responder_first(self):
        # petra and pete both name a distribution point and an OCSP responder.
        asked = self.ocsp_requests()
        r, log = self.call("petra", P_OCSP_FIRST)
        self.assertStatus(r, log, "200", 0)
        self.assertEqual(self.crl.count("/petra.crl"), 0)  # OCSP answered: the CRL was not needed
        self.assertEqual(self.ocsp_requests(), asked + 1)
        r, log = self.call("pete")  # the default order: the distribution point first
        self.assertStatus(r, log, "200", 0)
        self.assertEqual(self.crl.count("/pete.crl"), 1)
        self.assertEqual(self.ocsp_requests(), asked + 1)

    def test_file_url_is_never_fetched(self):
        r, log = self.call("fiona")
        self.assertStatus(r, log, "403.13", 2148081683)
        self.assertIn("never fetched", r.text)

    def test_missing_intermediate_comes_from_aia(self):
        r, log = self.call("aida")  # the client sends its certificate alone
        self.assertStatus(r, log, "200", 0)
        self.assertGreaterEqual(self.crl.count("/issuing.cer"), 1)

    # OCSP --------------------------------------------------------------------------------------
    def test_ocsp_good_revoked_unknown(self):
        r, log = self.call("ocean")
        self.assertStatus(r, log, "200", 0)
        r, log = self.call("orville")
        self.assertStatus(r, log, "403.13", 2148081680)
        self.assertIn("OCSP http://127.0.0.1:%d" % OCSP_PORT, r.text)
        r, log = self.call("ulrich")
        self.assertStatus(r, log, "403.13", 2148081683)
        self.assertIn("does not know the certificate", r.text)

    # cache behaviour ---------------------------------------------------------------------------
    def test_freshness_seconds_refetches_a_crl_before_its_next_update(self):
        # issuing.crl is valid for 30 days; the Fresh site wants it no older than 10 seconds.
        self.advance(11)  # whatever another test fetched is now too old: the next call fetches
        r, log = self.call("olga", P_FRESH)
        self.assertStatus(r, log, "200", 0)
        hits = self.crl.count("/issuing.crl")
        r, log = self.call("olga", P_FRESH)  # within 10 s: the cached CRL (and validation) serve
        self.assertStatus(r, log, "200", 0)
        self.assertEqual(self.crl.count("/issuing.crl"), hits)
        self.advance(11)
        r, log = self.call("olga", P_FRESH)
        self.assertStatus(r, log, "200", 0)
        self.assertEqual(self.crl.count("/issuing.crl"), hits + 1)

    def test_fifty_concurrent_requests_fetch_once(self):
        results = []

        def one():
            results.append(request(P_ONLINE, "conny", "concurrent").status)
        threads = [threading.Thread(target=one) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 50)
        self.assertEqual(self.crl.count("/conny.crl"), 1)

    def publish_crl(self, name, *validity):
        ca = {**os.environ, "CADIR": opki("ca/issuing")}
        subprocess.run(["openssl", "ca", "-config", opki("ca.cnf"), "-gencrl", "-crlexts", "crl_ext",
                        *validity, "-out", opki(name + "-crl.pem")], env=ca, check=True, capture_output=True)
        subprocess.run(["openssl", "crl", "-in", opki(name + "-crl.pem"), "-outform", "DER", "-out",
                        opki(f"www/{name}.crl")], check=True)

    def revoke(self, name):
        subprocess.run(["openssl", "ca", "-config", opki("ca.cnf"), "-revoke", opki(name + ".pem")],
                       env={**os.environ, "CADIR": opki("ca/issuing")}, check=True, capture_output=True)

    def test_cached_crl_answers_until_its_next_update(self):
        self.publish_crl("steady", "-crldays", "1")
        r, log = self.call("steady")
        self.assertStatus(r, log, "200", 0)
        self.assertEqual(self.crl.count("/steady.crl"), 1)
        # The CA revokes steady and publishes; the cached CRL is valid for a day yet: it answers.
        self.revoke("steady")
        self.publish_crl("steady", "-crldays", "1")
        r, log = self.call("steady")
        self.assertStatus(r, log, "200", 0)
        self.assertEqual(self.crl.count("/steady.crl"), 1)

    def test_crl_refetched_after_next_update_and_revocation_seen(self):
        # Valid for ten seconds of the server's time; then its clock moves past that instead of waiting.
        next_update = int(time.time()) + self.offset + 10
        self.publish_crl("short", "-crl_nextupdate", time.strftime("%Y%m%d%H%M%SZ", time.gmtime(next_update)))
        r, log = self.call("shorty")
        self.assertStatus(r, log, "200", 0)
        first = self.crl.count("/short.crl")
        self.revoke("shorty")
        self.publish_crl("short", "-crldays", "1")
        self.advance(11)
        r, log = self.call("shorty")
        self.assertStatus(r, log, "403.13", 2148081680)
        self.assertGreater(self.crl.count("/short.crl"), first)

    def test_z_metrics_and_restart_in_cache_only_mode(self):
        self.call("olga")
        self.call("dora")  # a failed fetch for the counters
        with urllib.request.urlopen(f"http://127.0.0.1:{P_ADMIN}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        # Counters by kind and result (never per URL: test_fetch_e2e.py); gauges per cached CRL.
        self.assertRegex(text, r'certgate_revocation_fetches_total\{kind="crl",result="ok"\} [1-9]')
        self.assertIn('certgate_crl_cache_age_seconds{url="http://127.0.0.1:%d/issuing.crl"}' % HTTP_PORT, text)
        self.assertIn("certgate_crl_cache_age_seconds", text)
        with self.assertRaises(urllib.error.HTTPError) as other:
            urllib.request.urlopen(f"http://127.0.0.1:{P_ADMIN}/nothing", timeout=5)
        self.assertEqual(other.exception.code, 404)  # only /metrics and the status page (/, /status.json)
        self.assertRegex(text, r'certgate_revocation_fetches_total\{kind="crl",result="error"\} [1-9]')

        out = run(["crl", "status", "-c", self.server.config])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("http://127.0.0.1:%d/issuing.crl" % HTTP_PORT, out.stdout)
        self.assertIn("CN=Online Issuing CA", out.stdout)
        before = self.crl.count("/issuing.crl")
        out = run(["crl", "fetch", "-c", self.server.config])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("fetched http://127.0.0.1:%d/issuing.crl" % HTTP_PORT, out.stdout)
        # issuing.crl, and again through redirect.crl when that one is cached too
        self.assertGreaterEqual(self.crl.count("/issuing.crl"), before + 1)

        # A new server in cache-only mode, with the CRL server gone: the persisted CRLs decide.
        self.server.stop()  # tearDownClass's second stop() is harmless
        hits = self.crl.count("/issuing.crl")
        cache_only = Server(site("Online", P_ONLINE, 1, 'revocation = "cache-only"'),
                            server_extra=server_settings(self.cache_dir)).start()
        try:
            q = f"restart-{time.monotonic_ns()}"
            r = request(P_ONLINE, "olga", q)
            self.assertEqual(r.status, 200, r.text)
            r = request(P_ONLINE, "oscar", q + "b")
            self.assertEqual(r.code(), "403.13", r.text)
            r = request(P_ONLINE, "ocean", q + "c")  # OCSP answers are not persisted: unknown
            self.assertEqual(r.code(), "403.13", r.text)
            self.assertEqual(self.crl.count("/issuing.crl"), hits, "cache-only must not fetch")
        finally:
            cache_only.stop()

    # tools -------------------------------------------------------------------------------------
    def test_verify_urlfetch_lists_each_url(self):
        out = run(["verify", "--ca", opki("root.pem"), "--urlfetch", opki("aida-chain.pem")])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("URL retrieval:", out.stdout)
        self.assertRegex(out.stdout, r"AIA\s+http://127\.0\.0\.1:%d/issuing\.cer\s+Verified: 1 certificate" % HTTP_PORT)
        self.assertRegex(out.stdout, r"CDP\s+http://127\.0\.0\.1:%d/issuing\.crl\s+Verified: Base CRL" % HTTP_PORT)
        self.assertRegex(out.stdout, r"Time: \d+ ms")
        out = run(["verify", "--ca", opki("root.pem"), "--urlfetch", opki("dora-chain.pem")])
        self.assertEqual(out.returncode, 1)
        self.assertRegex(out.stdout, r"CDP\s+http://127\.0\.0\.1:%d/issuing\.crl\s+Failed: cannot connect" % DEAD_PORT)


if __name__ == "__main__":
    unittest.main(verbosity=2)
