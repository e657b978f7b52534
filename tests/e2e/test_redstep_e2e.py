"""A hostile pass on client_certificate = "on-demand" and the step-up (docs/security.md "On-demand
certificates and step-up: a hostile pass"): renegotiation and post-handshake answers out of
turn, pipelining and keep-alive around the late handshake, body smuggling during the read-ahead,
resumed sessions, open redirects, ticket races, cookies on other sites and after revocation
without a reload, huge cookies, logout from another site."""
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
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, pki, read_response  # noqa: E402
import test_ondemand_e2e as od  # noqa: E402
from test_ondemand_e2e import SITES, P, U, R, browser, fetch, make_crl, pha_context  # noqa: E402
import test_revocation_e2e as rv  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def admin(q, method="GET", extra=""):
    return f"{method} /admin/?{q} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode()


class Hostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(SITES, test_clock=True)
        with open(os.path.join(cls.srv.dir, "step-up.key"), "wb") as f:
            f.write(os.urandom(32))
        make_crl(os.path.join(cls.srv.dir, "crl"))
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def logged(self, q, site=1):
        e = self.srv.log_entry(q, site_id=site)
        return e["sc-status"], e["sc-substatus"], e["cs-username"]

    # ---- the late handshake on one connection ---------------------------------------------------

    def test_refused_late_certificate_then_keep_alive(self):
        # A PHA client without a certificate answers with an empty Certificate message: 403.7,
        # and the connection goes on serving public paths, and is refused again (never a hang,
        # never a 200) when it asks for /admin once more.
        c = Connection(P, context=pha_context(user=None))
        self.assertEqual(c.request("/admin/?q=rs-empty-1").status, 403)
        self.assertEqual(c.request("/public/?q=rs-empty-2").status, 200)
        r = c.request("/admin/?q=rs-empty-3")
        self.assertEqual(r.status, 403)
        c.close()
        self.assertEqual(self.logged("q=rs-empty-1")[:2], ("403", "7"))
        self.assertEqual(self.logged("q=rs-empty-3")[:2], ("403", "7"))

    def test_other_site_certificate_in_the_late_answer(self):
        # The late answer carries a certificate of another PKI (the online test PKI's CA is not
        # trusted here, and here is not its site): refused, never mapped.
        ctx = pha_context(user=None)
        d = tempfile.mkdtemp(prefix="redstep-selfsigned-")
        try:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", f"{d}/k.pem", "-out", f"{d}/c.pem", "-subj",
                            "/O=Certgate Demo/CN=alice", "-days", "2"], check=True, capture_output=True)
            ctx.load_cert_chain(f"{d}/c.pem", f"{d}/k.pem")
            c = Connection(P, context=ctx)
            r = c.request("/admin/?q=rs-selfsigned")
            self.assertEqual(r.status, 403)
            c.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)
        status, sub, user = self.logged("q=rs-selfsigned")
        self.assertEqual((status, user), ("403", "-"))
        self.assertNotEqual(sub, "0")

    def test_pipelined_requests_around_post_handshake_auth(self):
        # Three requests in one write: public, admin (asks), public. The certificate obtained for
        # the second one is the connection's from then on, as with IIS; the first, answered
        # before it was asked, is anonymous.
        c = Connection(P, context=pha_context())
        c.sock.sendall(b"GET /public/?q=rs-pipe-1 HTTP/1.1\r\nHost: localhost\r\n\r\n" + admin("q=rs-pipe-2") +
                       b"GET /public/?q=rs-pipe-3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        codes = [read_response(c.file).status for _ in range(3)]
        c.close()
        self.assertEqual(codes[0], 200)
        self.assertEqual(self.logged("q=rs-pipe-1"), ("200", "0", "-"))
        # Request 2 is asked for while request 3's bytes are already in: it gets either the
        # certificate or a clean 403.7, never another request's answer.
        self.assertIn(self.logged("q=rs-pipe-2"), (("200", "0", "staff"), ("403", "7", "-")))
        self.assertEqual(codes[1], int(self.logged("q=rs-pipe-2")[0]))
        self.assertEqual(codes[2], 200)

    def test_client_renegotiation_after_a_server_one_is_refused(self):
        # s_client: the server renegotiates for /admin (200), then the client starts its own.
        p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{P}", "-servername", "localhost",
                              "-tls1_2", "-CAfile", pki("root-ca.pem"), "-cert", pki("alice.pem"),
                              "-cert_chain", pki("issuing-ca.pem"), "-key", pki("alice.key")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        p.stdin.write(admin("q=rs-reneg-then-R").decode())
        p.stdin.flush()
        time.sleep(1)
        p.stdin.write("R\n")
        p.stdin.flush()
        time.sleep(0.5)
        try:
            out = p.communicate(admin("q=rs-after-R").decode(), timeout=30)[0]
        except BrokenPipeError:
            out = p.communicate(timeout=30)[0]
        self.assertIn("HTTP/1.1 200 OK", out)
        self.assertIn(":no renegotiation:", out)
        self.assertEqual(self.logged("q=rs-reneg-then-R"), ("200", "0", "staff"))
        self.assertNotIn("rs-after-R", "".join(self.srv.log_lines(1)))

    def test_client_renegotiation_during_the_read_ahead_is_refused(self):
        # POST headers with half the body, then a client renegotiation: refused, nothing answered
        # with a certificate.
        p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{P}", "-servername", "localhost",
                              "-tls1_2", "-CAfile", pki("root-ca.pem"), "-cert", pki("alice.pem"),
                              "-cert_chain", pki("issuing-ca.pem"), "-key", pki("alice.key")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        p.stdin.write(admin("q=rs-readahead-R", "POST", "Content-Length: 40\r\n").decode() + "abc\n")
        p.stdin.flush()
        time.sleep(0.5)
        try:
            out = p.communicate("R\n", timeout=30)[0]
        except BrokenPipeError:
            out = p.communicate(timeout=30)[0]
        self.assertIn(":no renegotiation:", out)
        self.assertNotIn("HTTP/1.1 200", out)
        self.assertNotIn("HTTP/1.1 405", out)

    def test_read_ahead_smuggling_is_refused(self):
        # Chunked bodies are not read ahead (413.0, the connection closed: no second request
        # hidden in the chunks is ever parsed).
        c = Connection(P, context=pha_context())
        smuggled = b"0\r\n\r\nGET /admin/?q=rs-smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"
        r = c.request(raw=admin("q=rs-chunked", "POST", "Transfer-Encoding: chunked\r\n") + b"5\r\nhello\r\n" + smuggled)
        self.assertEqual(r.status, 413)
        c.close()
        self.assertEqual(self.logged("q=rs-chunked")[:2], ("413", "0"))
        # Both framings at once are refused before any certificate is asked for.
        c = Connection(P, context=pha_context())
        r = c.request(raw=admin("q=rs-te-cl", "POST", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n") + b"0\r\n\r\n")
        self.assertEqual(r.status, 400)
        c.close()
        # A Content-Length longer than what comes: the read-ahead waits, then 408 (body_timeout)
        # or the client leaves; with Expect: 100-continue the 100 goes out first.
        c = Connection(P, context=pha_context())
        c.sock.sendall(admin("q=rs-expect", "POST", "Content-Length: 10\r\nExpect: 100-continue\r\n"))
        first = read_response(c.file)
        self.assertEqual(first.status, 100)
        c.sock.sendall(b"0123456789")
        r = read_response(c.file)
        self.assertEqual(r.status, 405)  # static files take GET only: asked, mapped, then 405
        c.close()
        self.assertEqual(self.logged("q=rs-expect"), ("405", "0", "staff"))

    def test_resumed_session_after_renegotiation(self):
        # TLS 1.2: a session resumed after the server renegotiated for a certificate. The decision
        # is made again on the new connection: a public path stays anonymous, /admin is decided
        # by the pipeline (staff).
        ctx = client_context("alice", "1.2")
        c = Connection(P, context=ctx)
        self.assertEqual(c.request("/admin/?q=rs-resume-0").status, 200)
        sess = c.sock.session
        c.close()
        c = Connection(P, context=ctx, session=sess)
        self.assertTrue(c.sock.session_reused)
        self.assertEqual(c.request("/public/?q=rs-resume-pub").status, 200)
        self.assertEqual(c.request("/admin/?q=rs-resume-1").status, 200)
        c.close()
        self.assertEqual(self.logged("q=rs-resume-pub"), ("200", "0", "-"))
        self.assertEqual(self.logged("q=rs-resume-1"), ("200", "0", "staff"))
        # The same session offered to another site's binding is not resumed there.
        c = Connection(R, context=ctx, session=sess)
        self.assertFalse(c.sock.session_reused)
        c.close()

    # ---- step-up ---------------------------------------------------------------------------------

    def no_redirects(self, user="alice"):
        import urllib.request
        return urllib.request.build_opener(urllib.request.HTTPSHandler(context=pha_context(user, pha=False)),
                                           od.NoRedirect())

    def first_hop(self, q):
        status, _, headers, _ = fetch(self.no_redirects(), f"https://localhost:{P}/admin/?{q}")
        self.assertEqual(status, 303)
        self.state = {"Cookie": re.search(r"__Host-certgate_cert_state=[^;]*", headers["Set-Cookie"]).group(0)}
        return headers["Location"]

    def ticket_url(self, q, user="alice"):
        status, _, headers, _ = fetch(self.no_redirects(user), self.first_hop(q))
        self.assertEqual(status, 303)
        return headers["Location"]

    def test_open_redirect_through_host_and_target(self):
        # What the first hop signs is built from the request: userinfo, other hosts in the
        # absolute form, backslashes, fragments, non-ASCII names never become a return URL.
        hosts = [f"evil.test@localhost:{P}", f"localhost:{P}@evil.test", f"localhost:{P}\\@evil.test",
                 f"localhost:{P}#@evil.test", "localhost:99999", f"l\u00f6calhost:{P}", f"localhost:{P} evil.test",
                 f"[::1]:{P}", f"localhost.:{P}"]
        ours = (f"https://localhost:{P}/", f"https://localhost.:{P}/")  # the same name in the DNS
        for i, host in enumerate(hosts):
            c = Connection(P, context=pha_context(pha=False))
            r = c.request(raw=f"GET /admin/?q=rs-host-{i} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            c.close()
            loc = r.headers.get("location", "")
            if r.status == 303:
                ret = urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)["return"][0]
                self.assertTrue(ret.startswith(ours), (host, ret))
            else:
                self.assertIn(r.status, (400, 403), host)
                self.assertEqual(loc, "", host)
        for i, target in enumerate([f"https://evil.test:{P}/admin/?q=rs-abs-1", f"https://evil.test@localhost:{P}/admin/"]):
            c = Connection(P, context=pha_context(pha=False))
            r = c.request(raw=f"GET {target} HTTP/1.1\r\nHost: localhost:{P}\r\n\r\n".encode())
            c.close()
            loc = r.headers.get("location", "")
            if loc:
                ret = urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)["return"][0]
                self.assertTrue(ret.startswith(f"https://localhost:{P}/"), (target, ret))

    def test_open_redirect_through_the_completion_return(self):
        url = self.ticket_url("q=rs-ret")
        for evil in ("/%2F%2Fevil.test/", "/%5Cevil.test/", "/%09/evil.test", "%2F%2Fevil.test",
                     "/x%0d%0aSet-Cookie:%20a=b", "https:evil.test", "/%23//evil.test", "%5C%5Cevil.test"):
            bad = re.sub(r"return=[^&]*", "return=" + evil, url)
            status, _, headers, _ = fetch(self.no_redirects(), bad, headers=self.state)
            loc = headers.get("Location")
            if status == 303:
                self.assertTrue(loc.startswith("/") and not loc.startswith("//") and "\\" not in loc
                                and "\r" not in loc and "\n" not in loc, (evil, loc))
            else:
                self.assertEqual(status, 400, evil)
                self.assertIsNone(loc)

    def test_ticket_race_across_two_connections(self):
        url = self.ticket_url("q=rs-race")
        results = []

        def take():
            status, _, headers, _ = fetch(self.no_redirects(), url, headers=self.state)
            results.append((status, headers.get("Set-Cookie")))
        threads = [threading.Thread(target=take) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [r for r in results if r[0] == 303 and r[1] and "certgate_cert=" in r[1]]
        self.assertEqual(len(winners), 1, results)
        self.assertEqual(sorted(r[0] for r in results), [303] + [403] * 7)

    def test_cookie_of_one_port_on_the_step_up_binding(self):
        # Cookies ignore ports: the cookie of the on-demand binding reaches the step-up binding
        # too (same site). A client there without a certificate is not let in by it... nor by
        # a cookie made for another site with the same name.
        opener, jar = browser()
        status, _, _, _ = fetch(opener, f"https://localhost:{P}/admin/?q=rs-port-base")
        self.assertEqual(status, 200)
        cookie = next(c for c in jar if c.name == "certgate_cert")
        c = Connection(R, context=pha_context(pha=False))
        r = c.request("/admin/?q=rs-port-R", host=f"localhost:{R}", headers={"Cookie": f"certgate_cert={cookie.value}"})
        c.close()
        self.assertEqual(r.status, 303)

    def test_cookie_ends_with_the_certificate(self):
        # A certificate valid for 30 more minutes, at a site whose cookies live an hour: the
        # cookie ends at the certificate's notAfter, whatever lifetime_seconds says.
        import datetime
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
        with open(pki("issuing-ca.pem"), "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        with open(pki("issuing-ca.key"), "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), None)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Certgate Demo"),
                                         x509.NameAttribute(NameOID.COMMON_NAME, "shortlived")]))
                .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(minutes=30))
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value), critical=False)
                .sign(ca_key, hashes.SHA256()))
        d = tempfile.mkdtemp(prefix="redstep-short-")
        try:
            with open(f"{d}/short.pem", "wb") as f:
                f.write(cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
            with open(f"{d}/short.key", "wb") as f:
                f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
            import http.cookiejar
            import urllib.request
            jar = http.cookiejar.CookieJar()
            ctx = pha_context(user=None, pha=False)
            ctx.load_cert_chain(f"{d}/short.pem", f"{d}/short.key")
            opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                                 urllib.request.HTTPCookieProcessor(jar))
            status, body, _, _ = fetch(opener, f"https://localhost:{R}/admin/?q=rs-short-0")
            self.assertEqual(status, 200, body)
            value = next(c for c in jar if c.name == "certgate_cert").value
        finally:
            shutil.rmtree(d, ignore_errors=True)

        def with_cookie(q):
            c = Connection(R, context=pha_context(user=None, pha=False))
            r = c.request(f"/admin/?{q}", host=f"localhost:{R}", headers={"Cookie": f"certgate_cert={value}"})
            c.close()
            return r.status
        try:
            self.srv.shift_clock(25 * 60)
            self.assertEqual(with_cookie("q=rs-short-1"), 200)
            self.srv.shift_clock(31 * 60)
            self.assertEqual(with_cookie("q=rs-short-2"), 303)
        finally:
            self.srv.shift_clock(0)
        self.assertEqual(self.logged("q=rs-short-2", site=3)[:2], ("303", "0"))

    def test_huge_and_repeated_cookies(self):
        for i, value in enumerate(("A" * 5000 + "." + "B" * 43, "." * 3000, "x" * 60000)):
            c = Connection(P, context=pha_context(pha=False))
            try:
                r = c.request(f"/admin/?q=rs-huge-{i}", host=f"localhost:{P}", headers={"Cookie": f"certgate_cert={value}"})
                self.assertIn(r.status, (303, 431), i)
            except (ssl.SSLError, ConnectionError):
                self.assertEqual(i, 2)  # refused (431) and closed while the client was still sending
            finally:
                c.close()
        # Two cookies of the name: a forged first one does not hide, nor borrow, a good second one.
        _, jar = browser()
        opener, jar = browser()
        fetch(opener, f"https://localhost:{P}/admin/?q=rs-two-base")
        good = next(c for c in jar if c.name == "certgate_cert").value
        c = Connection(P, context=pha_context(pha=False))
        r = c.request("/admin/?q=rs-two", host=f"localhost:{P}",
                      headers={"Cookie": f"certgate_cert=forged.AAAA; certgate_cert={good}"})
        c.close()
        self.assertIn(r.status, (200, 303))

    def test_logout_from_another_site_is_refused(self):
        # GET /.certgate/step-up/logout from a page of another site (a link, an <img>): the
        # browser says so in Sec-Fetch-Site; the cookie is not cleared.
        c = Connection(P, context=pha_context(pha=False))
        r = c.request("/.certgate/step-up/logout?q=rs-logout-csrf", host=f"localhost:{P}",
                      headers={"Sec-Fetch-Site": "cross-site"})
        c.close()
        self.assertNotIn("set-cookie", {k.lower() for k in r.headers})
        self.assertEqual(r.status, 400)
        self.assertEqual(self.logged("q=rs-logout-csrf")[:2], ("400", "0"))
        c = Connection(P, context=pha_context(pha=False))
        r = c.request("/.certgate/step-up/logout?q=rs-logout-same", host=f"localhost:{P}",
                      headers={"Sec-Fetch-Site": "same-origin"})
        c.close()
        self.assertEqual(r.status, 303)
        self.assertIn("Max-Age=0", r.headers.get("set-cookie", ""))

    def test_ticket_is_bound_to_the_browser_that_started(self):
        # Login CSRF: a user steps up with their own certificate and sends the completion link,
        # ticket and all, to someone else. The victim's browser did not start that step-up: no
        # cookie is set for it.
        url = self.ticket_url("q=rs-login-csrf", user="alice")
        for other in ({}, {"Cookie": "__Host-certgate_cert_state=" + "A" * 22}):
            status, body, headers, _ = fetch(self.no_redirects(), url, headers=other)
            self.assertIsNone(headers.get("Set-Cookie"), body)
            self.assertEqual(status, 403, body)
            self.assertIn("state cookie", body)
        # The browser that started it completes it (the ticket was not spent by the refusals).
        status, _, headers, _ = fetch(self.no_redirects(), url, headers=self.state)
        self.assertEqual(status, 303)
        self.assertIn("certgate_cert=", headers.get("Set-Cookie"))


class RevokedWithoutReload(unittest.TestCase):
    """A cookie holder whose certificate is revoked by a CRL fetched online (no reload, no
    restart): the next request with the cookie is 403.13."""
    P, U = free_port(), free_port()

    @classmethod
    def setUpClass(cls):
        cls.opki = rv.OPKI
        subprocess.run(["bash", os.path.join(HERE, "online_pki.sh"), rv.OPKI, str(rv.HTTP_PORT), str(rv.OCSP_PORT),
                        str(rv.DEAD_PORT), str(rv.LDAP_PORT)], check=True, capture_output=True)
        cls.crl = rv.CrlServer(rv.HTTP_PORT)
        cache = tempfile.mkdtemp(prefix="redstep-cache-")
        cls.cache = cache
        cls.srv = Server(f"""
[[sites]]
name = "Online"
id = 1
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{cls.P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  client_certificate = "on-demand"
  [[sites.bindings]]
  listen = "127.0.0.1:{cls.U}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["{rv.opki('root.pem')}"]
  url_timeout_ms = 1000
  retry_seconds = 1
  freshness_seconds = 10
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [sites.step_up]
  url = "https://localhost:{cls.U}/"
  key_file = "step-up.key"
  lifetime_seconds = 600
""", server_extra=f'cache_dir = "{cache}"', test_clock=True)
        with open(os.path.join(cls.srv.dir, "step-up.key"), "wb") as f:
            f.write(os.urandom(32))
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.crl.stop()
        shutil.rmtree(rv.OPKI, ignore_errors=True)
        shutil.rmtree(cls.cache, ignore_errors=True)

    def test_revoked_by_an_online_crl_without_reload(self):
        import http.cookiejar
        import urllib.request
        jar = http.cookiejar.CookieJar()
        ctx = client_context("olga", cert_dir=rv.OPKI)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.post_handshake_auth = False
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                             urllib.request.HTTPCookieProcessor(jar))
        status, body, _, url = fetch(opener, f"https://localhost:{self.P}/admin/?q=rs-olga-1")
        self.assertEqual((status, url), (200, f"https://localhost:{self.P}/admin/?q=rs-olga-1"), body)
        cookie = next(c for c in jar if c.name == "certgate_cert").value

        def with_cookie(q):
            c = Connection(self.P, context=pha_context(user=None, pha=False))
            r = c.request(f"/admin/?{q}", host=f"localhost:{self.P}", headers={"Cookie": f"certgate_cert={cookie}"})
            c.close()
            return r
        self.assertEqual(with_cookie("q=rs-olga-2").status, 200)
        # The CA revokes olga and publishes its CRL; the server's clock moves past the site's
        # freshness_seconds (the cookie, 600 s, is still valid): the CRL is fetched again.
        subprocess.run(["openssl", "ca", "-config", rv.opki("ca.cnf"), "-revoke", rv.opki("olga.pem")],
                       env={**os.environ, "CADIR": rv.opki("ca/issuing")}, check=True, capture_output=True)
        subprocess.run(["openssl", "ca", "-config", rv.opki("ca.cnf"), "-gencrl", "-crlexts", "crl_ext", "-crldays", "30",
                        "-out", rv.opki("issuing-crl.pem")], env={**os.environ, "CADIR": rv.opki("ca/issuing")},
                       check=True, capture_output=True)
        subprocess.run(["openssl", "crl", "-in", rv.opki("issuing-crl.pem"), "-outform", "DER", "-out",
                        rv.opki("www/issuing.crl")], check=True)
        self.srv.shift_clock(11)
        try:
            r = with_cookie("q=rs-olga-3")
        finally:
            self.srv.shift_clock(0)
        self.assertEqual(r.status, 403, r.text)
        e = self.srv.log_entry("q=rs-olga-3")
        self.assertEqual((e["sc-status"], e["sc-substatus"]), ("403", "13"), e)


if __name__ == "__main__":
    unittest.main()
