"""client_certificate = "on-demand" (issue 15, docs/on-demand.md) with real clients: TLS 1.3
post-handshake authentication (Python ssl, openssl s_client -enable_pha, curl), TLS 1.2
server-initiated renegotiation (Python ssl, s_client), the body read ahead first (413.0 beyond
upload_read_ahead_bytes), and the step-up for a TLS 1.3 client without post-handshake auth
(urllib following redirects with a cookie jar): tickets, cookies, open redirects, reloads."""
import http.client
import http.cookiejar
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, pki, run  # noqa: E402
from test_files_e2e import reload  # noqa: E402
import test_files_e2e  # noqa: E402


def make_crl(folder, *revoked):
    """issuing-ca's CRL listing carol (as the fixture's) and `revoked`; root-ca's beside it."""
    test_files_e2e.make_crl(folder, "carol.pem")
    if revoked:  # the builder takes one name: add the others to the same CRL text
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        import datetime
        with open(pki("issuing-ca.pem"), "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        with open(pki("issuing-ca.key"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
             .last_update(now - datetime.timedelta(minutes=1)).next_update(now + datetime.timedelta(days=1))
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                 ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value), critical=False)
             .add_extension(x509.CRLNumber(int(time.time() * 1000)), critical=False))
        for name in ("carol.pem",) + revoked:
            with open(pki(name), "rb") as f:
                serial = x509.load_pem_x509_certificate(f.read()).serial_number
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                          .revocation_date(now - datetime.timedelta(seconds=30)).build())
        with open(os.path.join(folder, "issuing-ca.crl"), "wb") as f:
            f.write(b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))

# on-demand, its step-up binding, a site without step-up, another site stepping up at U with the same key
P, U, Q, R = free_port(), free_port(), free_port(), free_port()

SITES = f"""
[[sites]]
name = "Intranet"
id = 1
root = "www"
upload_read_ahead_bytes = 1000
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  client_certificate = "on-demand"
  [[sites.bindings]]
  listen = "127.0.0.1:{U}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["crl"]
  revocation = "cache-only"
  [sites.mapping]
  enabled = true
  [[sites.mapping.many_to_one]]
  name = "demo staff"
  user = "staff"
    [[sites.mapping.many_to_one.rules]]
    field = "Issuer"
    subfield = "O"
    match = "Certgate Demo"
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  anonymous = false
  [sites.step_up]
  url = "https://localhost:{U}/"
  key_file = "step-up.key"
  lifetime_seconds = 600

[[sites]]
name = "Plain"
id = 2
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{Q}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  client_certificate = "on-demand"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  revocation = "off"
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]

[[sites]]
name = "Extranet"
id = 3
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{R}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  client_certificate = "on-demand"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  revocation = "off"
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [sites.step_up]
  url = "https://localhost:{U}/"
  key_file = "step-up.key"
"""

GET_ADMIN = "GET /admin/?{q} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def pha_context(user="alice", tls_version="1.3", pha=True):
    ctx = client_context(user, tls_version)
    ctx.post_handshake_auth = pha
    return ctx


def s_client(port, request, *extra):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                        "-CAfile", pki("root-ca.pem"), "-ign_eof", *extra],
                       input=request, capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def browser(user="alice"):
    """urllib as a browser that offers no post-handshake auth: follows redirects, keeps cookies,
    presents `user`'s certificate where a handshake asks for one."""
    jar = http.cookiejar.CookieJar()
    ctx = pha_context(user, pha=False)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                         urllib.request.HTTPCookieProcessor(jar))
    return opener, jar


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def fetch(opener, url, method="GET", headers=None):
    try:
        r = opener.open(urllib.request.Request(url, method=method, headers=headers or {}), timeout=10)
        return r.status, r.read().decode(errors="replace"), r.headers, r.geturl()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), e.headers, e.geturl()


class OnDemand(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(SITES, test_clock=True)
        with open(os.path.join(cls.srv.dir, "step-up.key"), "wb") as f:
            f.write(os.urandom(32))
        make_crl(os.path.join(cls.srv.dir, "crl"))
        cls.srv.start()
        cls.generation = 1

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def entry(self, q, site=1):
        return self.srv.log_entry(q, site_id=site)

    def assert_logged(self, q, status, sub, user="-", site=1):
        e = self.entry(q, site)
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["cs-username"]), (str(status), str(sub), user), e)
        return e

    # ---- the handshake asks nothing -------------------------------------------------------------

    def test_public_path_gets_no_certificate_request(self):
        for version in ("-tls1_2", "-tls1_3"):
            out = s_client(P, "GET /public/?q=nocr HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", version)
            self.assertIn("No client certificate CA names sent", out, out)
            self.assertIn("200 OK", out)
        # A client holding a certificate is not asked for it either: the request is anonymous.
        c = Connection(P, context=pha_context())
        r = c.request("/public/?q=public-anon")
        self.assertEqual(r.status, 200)
        c.close()
        self.assert_logged("q=public-anon", 200, 0)

    # ---- TLS 1.3 post-handshake authentication --------------------------------------------------

    def test_python_pha_on_the_same_connection(self):
        c = Connection(P, context=pha_context())
        self.assertEqual(c.request("/public/?q=pha-public").status, 200)
        r = c.request("/admin/?q=pha-admin")
        self.assertEqual(r.status, 200, r.text)
        # The connection keeps its certificate: the next request is not asked again.
        self.assertEqual(c.request("/admin/?q=pha-again").status, 200)
        c.close()
        self.assert_logged("q=pha-public", 200, 0)
        self.assert_logged("q=pha-admin", 200, 0, "staff")
        self.assert_logged("q=pha-again", 200, 0, "staff")

    def test_pha_without_a_certificate_is_403_7(self):
        c = Connection(P, context=pha_context(user=None))
        r = c.request("/admin/?q=pha-none")
        self.assertEqual((r.status, r.headers.get("x-substatus", "7")), (403, "7"))
        c.close()
        self.assert_logged("q=pha-none", 403, 7)

    def test_pha_revoked_certificate_is_403_13(self):
        c = Connection(P, context=pha_context(user="carol"))
        self.assertEqual(c.request("/admin/?q=pha-carol").status, 403)
        c.close()
        self.assert_logged("q=pha-carol", 403, 13, "-")

    def test_s_client_enable_pha(self):
        out = s_client(P, GET_ADMIN.format(q="q=sclient-pha"), "-tls1_3", "-enable_pha",
                       "-cert", pki("alice.pem"), "-cert_chain", pki("issuing-ca.pem"), "-key", pki("alice.key"))
        self.assertIn("HTTP/1.1 200 OK", out, out)
        self.assert_logged("q=sclient-pha", 200, 0, "staff")

    def test_curl_offers_pha(self):
        if not shutil.which("curl"):
            self.skipTest("curl not installed")
        # HTTP/1.1: over HTTP/2 (curl's default) a stream takes the step-up instead (test_h2_e2e).
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--tlsv1.3", "--http1.1",
                            "--cacert", pki("root-ca.pem"), "--cert", pki("alice-chain.pem"), "--key", pki("alice.key"),
                            "--resolve", f"localhost:{P}:127.0.0.1", f"https://localhost:{P}/admin/?q=curl-pha"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout, "200", r.stderr)
        self.assert_logged("q=curl-pha", 200, 0, "staff")

    # ---- TLS 1.2 renegotiation ------------------------------------------------------------------

    def test_python_tls12_renegotiation(self):
        c = Connection(P, context=client_context("alice", "1.2"))
        self.assertEqual(c.request("/public/?q=reneg-public").status, 200)
        self.assertEqual(c.request("/admin/?q=reneg-admin").status, 200)
        c.close()
        self.assert_logged("q=reneg-admin", 200, 0, "staff")

    def test_s_client_tls12_renegotiation(self):
        out = s_client(P, GET_ADMIN.format(q="q=sclient-reneg"), "-tls1_2",
                       "-cert", pki("alice.pem"), "-cert_chain", pki("issuing-ca.pem"), "-key", pki("alice.key"))
        self.assertIn("HTTP/1.1 200 OK", out, out)
        self.assert_logged("q=sclient-reneg", 200, 0, "staff")

    def test_client_initiated_renegotiation_is_refused(self):
        # s_client's "R" command renegotiates from the client side; the server refuses it and the
        # connection serves nothing more that needs a certificate.
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{P}", "-servername", "localhost",
                            "-tls1_2", "-CAfile", pki("root-ca.pem"), "-cert", pki("alice-chain.pem"),
                            "-key", pki("alice.key")],
                           input="R\n", capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        self.assertIn("RENEGOTIATING", out)
        self.assertIn(":no renegotiation:", out)

    def test_body_within_read_ahead_then_certificate(self):
        for ctx, q in ((pha_context(), "q=body-pha"), (client_context("alice", "1.2"), "q=body-reneg")):
            c = Connection(P, context=ctx)
            r = c.request("/admin/?" + q, method="POST", body=b"x" * 900)
            # Static files take GET only: the 405 comes after the certificate was asked and mapped.
            self.assertEqual(r.status, 405, r.text)
            c.close()
            self.assert_logged(q, 405, 0, "staff")

    def test_body_over_read_ahead_is_413_0(self):
        for ctx, q in ((pha_context(), "q=big-pha"), (client_context("alice", "1.2"), "q=big-reneg")):
            c = Connection(P, context=ctx)
            r = c.request("/admin/?" + q, method="POST", body=b"x" * 1001)
            self.assertEqual(r.status, 413, r.text)
            self.assertIn("upload_read_ahead_bytes", r.text)
            c.close()
            self.assert_logged(q, 413, 0)

    # ---- step-up --------------------------------------------------------------------------------

    def test_without_step_up_the_reason_is_given(self):
        c = Connection(Q, context=pha_context(pha=False))
        r = c.request("/admin/?q=no-stepup")
        self.assertEqual(r.status, 403)
        self.assertIn("TLS 1.3 without post-handshake authentication", r.text)
        c.close()
        self.assert_logged("q=no-stepup", 403, 7, site=2)

    def step_up(self, user="alice", q="q=stepup"):
        opener, jar = browser(user)
        status, body, headers, url = fetch(opener, f"https://localhost:{P}/admin/?{q}")
        return opener, jar, status, body, url

    def test_step_up_for_a_client_without_pha(self):
        opener, jar, status, body, url = self.step_up(q="q=stepup-1")
        self.assertEqual(status, 200, body)
        self.assertIn("hello from /admin", body)
        self.assertEqual(url, f"https://localhost:{P}/admin/?q=stepup-1")
        cookies = {c.name: c for c in jar}
        self.assertIn("certgate_cert", cookies)
        self.assertTrue(cookies["certgate_cert"].secure)
        self.assertTrue(cookies["certgate_cert"].has_nonstandard_attr("HttpOnly"))
        # The first request was sent to the step-up address; the last one is served with the cookie.
        lines = [l for l in self.srv.log_lines(1) if "q=stepup-1" in l or "step-up" in l]
        self.assertTrue(any(" 303 0 0 " in l for l in lines), lines)
        e = self.entry("q=stepup-1")
        self.assertIn(e["sc-status"], ("303", "200"))
        self.assertTrue(any(l.split(" ")[-0:] and " staff " in l and " 200 0 0 " in l and "q=stepup-1" in l
                            for l in self.srv.log_lines(1)), lines)
        # The cookie stands for the certificate on a new connection, for another request too.
        status, body, _, _ = fetch(opener, f"https://localhost:{P}/admin/index.html?q=stepup-cookie")
        self.assertEqual(status, 200)
        self.assert_logged("q=stepup-cookie", 200, 0, "staff")
        # Logout clears it: the next request is sent to the step-up address again.
        fetch(opener, f"https://localhost:{P}/.certgate/step-up/logout")
        self.assertNotIn("certgate_cert", {c.name for c in jar if c.value})

    def test_step_up_post_gets_401_with_location(self):
        conn = http.client.HTTPSConnection("localhost", P, context=pha_context(pha=False), timeout=10)
        conn.request("POST", "/admin/?q=stepup-post", body=b"a=1")
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 401)
        self.assertTrue(r.getheader("Location").startswith(f"https://localhost:{U}/.certgate/step-up?return="))
        self.assert_logged("q=stepup-post", 401, 0)

    def test_step_up_refuses_revoked_certificate(self):
        _, _, status, body, url = self.step_up("carol", "q=stepup-carol")
        self.assertEqual(status, 403, body)
        self.assertTrue(url.startswith(f"https://localhost:{U}/.certgate/step-up"), url)

    def no_redirects(self, user="alice"):
        ctx = pha_context(user, pha=False)
        return urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), NoRedirect())

    def first_hop(self, q):
        status, _, headers, _ = fetch(self.no_redirects(), f"https://localhost:{P}/admin/?{q}")
        self.assertEqual(status, 303)
        # The browser binding: only a browser holding this cookie may complete the step-up.
        self.state = {"Cookie": re.search(r"__Host-certgate_cert_state=[^;]*", headers["Set-Cookie"]).group(0)}
        return headers["Location"]

    def ticket_url(self, q):
        status, _, headers, _ = fetch(self.no_redirects(), self.first_hop(q))
        self.assertEqual(status, 303)
        return headers["Location"]

    def test_ticket_is_single_use(self):
        url = self.ticket_url("q=ticket-reuse")
        self.assertTrue(url.startswith(f"https://localhost:{P}/.certgate/step-up/complete?ticket="), url)
        status, _, headers, _ = fetch(self.no_redirects(), url, headers=self.state)
        self.assertEqual(status, 303)
        self.assertIn("certgate_cert=", headers["Set-Cookie"])
        self.assertIn("SameSite=Lax", headers["Set-Cookie"])
        self.assertEqual(headers["Location"], "/admin/?q=ticket-reuse")
        status, body, _, _ = fetch(self.no_redirects(), url, headers=self.state)
        self.assertEqual(status, 403, body)
        self.assertIn("already used", body)

    def test_ticket_expires_after_60_seconds(self):
        url = self.ticket_url("q=ticket-late")
        self.srv.shift_clock(61)
        try:
            status, body, _, _ = fetch(self.no_redirects(), url, headers=self.state)
        finally:
            self.srv.shift_clock(0)
        self.assertEqual(status, 403, body)
        self.assertIn("expired", body)

    def test_open_redirects_are_refused(self):
        loc = self.first_hop("q=redirect")
        parsed = urllib.parse.urlparse(loc)
        qs = urllib.parse.parse_qs(parsed.query)
        sig = qs["sig"][0]
        base = f"https://localhost:{U}/.certgate/step-up?"
        for ret, s in (("https://evil.test/", sig), (f"https://evil.test:{P}/admin/?q=redirect", sig),
                       (f"https://localhost:{P}//evil.test/", sig), (qs["return"][0] + "x", sig),
                       (qs["return"][0], sig[:-1] + ("A" if sig[-1] != "A" else "B"))):
            status, body, headers, _ = fetch(self.no_redirects(), base + urllib.parse.urlencode(
                {"return": ret, "state": qs["state"][0], "sig": s}))
            self.assertEqual(status, 400, (ret, body))
            self.assertIsNone(headers.get("Location"))
        # The state (the browser binding) is signed with the return URL: another one is refused.
        status, _, headers, _ = fetch(self.no_redirects(), base + urllib.parse.urlencode(
            {"return": qs["return"][0], "state": ("x" if qs["state"][0][0] != "x" else "y") + qs["state"][0][1:],
             "sig": sig}))
        self.assertEqual(status, 400)
        self.assertIsNone(headers.get("Location"))
        # The completion's return path must stay on this site.
        url = self.ticket_url("q=redirect-2")
        for evil in ("//evil.test/", "/\\evil.test/", "https://evil.test/"):
            bad = re.sub(r"return=[^&]*", "return=" + urllib.parse.quote(evil, safe=""), url)
            status, _, headers, _ = fetch(self.no_redirects(), bad)
            self.assertEqual(status, 400, evil)
            self.assertIsNone(headers.get("Location"))

    def test_no_step_up_to_a_name_the_site_is_not_configured_for(self):
        # A default binding answers any Host; a return URL on an attacker's name would carry the
        # ticket to the attacker. Only configured names (or the step-up URL's host) are returned to.
        c = Connection(P, context=pha_context(pha=False))
        r = c.request("/admin/?q=evil-host", host=f"evil.test:{P}")
        self.assertEqual(r.status, 403)
        self.assertIsNone(r.headers.get("location"))
        c.close()
        self.assert_logged("q=evil-host", 403, 7)

    def test_no_header_injection_through_the_return_url(self):
        c = Connection(P, context=pha_context(pha=False))
        r = c.request("/admin/?q=inject%0d%0aX-Injected:%201", host=f"localhost:{P}")
        self.assertEqual(r.status, 303)
        self.assertNotIn("x-injected", {k.lower() for k in r.headers})
        self.assertNotIn("\r", r.headers.get("location", ""))
        c.close()

    def cookie_holder(self, q):
        opener, jar, status, body, _ = self.step_up(q=q)
        self.assertEqual(status, 200, body)
        return opener, jar, next(c for c in jar if c.name == "certgate_cert")

    def raw_with_cookie(self, value, q, port=P):
        c = Connection(port, context=pha_context(pha=False))
        r = c.request(f"/admin/?{q}", host=f"localhost:{port}", headers={"Cookie": f"certgate_cert={value}"})
        c.close()
        return r

    def test_tampered_and_foreign_cookies_are_refused(self):
        _, _, cookie = self.cookie_holder("q=tamper-base")
        self.assertEqual(self.raw_with_cookie(cookie.value, "q=tamper-ok").status, 200)
        v = cookie.value
        tampered = v[:5] + ("A" if v[5] != "A" else "B") + v[6:]
        self.assertEqual(self.raw_with_cookie(tampered, "q=tamper-1").status, 303)
        self.assert_logged("q=tamper-1", 303, 0)
        # Another site of the same server, stepping up at the same address with the same key: the
        # site is in the MAC, so the cookie is no certificate there (sent to step up instead).
        r = self.raw_with_cookie(cookie.value, "q=tamper-site", port=R)
        self.assertEqual(r.status, 303)
        self.assert_logged("q=tamper-site", 303, 0, site=3)
        # A site without step-up does not look at it at all.
        r = self.raw_with_cookie(cookie.value, "q=tamper-plain", port=Q)
        self.assertEqual(r.status, 403)
        self.assert_logged("q=tamper-plain", 403, 7, site=2)

    def test_ticket_of_one_site_is_refused_by_another(self):
        url = self.ticket_url("q=ticket-site")
        other = url.replace(f"https://localhost:{P}/", f"https://localhost:{R}/")
        status, body, headers, _ = fetch(self.no_redirects(), other)
        self.assertEqual(status, 403, body)
        self.assertIn("made for another site", body)
        self.assertIsNone(headers.get("Set-Cookie"))
        # The step-up address serves both sites: each return URL goes back to its own site.
        _, _, status, body, url = self.step_up(q="q=both-1")
        self.assertEqual((status, url), (200, f"https://localhost:{P}/admin/?q=both-1"))
        opener, _ = browser()
        status, body, _, url = fetch(opener, f"https://localhost:{R}/admin/?q=both-2")
        self.assertEqual((status, url), (200, f"https://localhost:{R}/admin/?q=both-2"), body)

    def test_expired_cookie_is_refused(self):
        _, _, cookie = self.cookie_holder("q=expire-base")
        self.srv.shift_clock(601)
        try:
            self.assertEqual(self.raw_with_cookie(cookie.value, "q=expire-1").status, 303)
        finally:
            self.srv.shift_clock(0)
        self.assert_logged("q=expire-1", 303, 0)

    def test_reload_and_crl_take_effect_for_a_cookie_holder(self):
        opener, _, cookie = self.cookie_holder("q=reload-base")
        # The CA revokes alice; a reload brings the new CRL: the cookie, made under the earlier
        # configuration, no longer stands for the certificate, and the step-up now refuses it.
        make_crl(os.path.join(self.srv.dir, "crl"), "alice.pem")
        self.srv.edit_config("lifetime_seconds = 600", "lifetime_seconds = 601")
        OnDemand.generation += 1
        reload(self.srv, OnDemand.generation)
        try:
            self.assertEqual(self.raw_with_cookie(cookie.value, "q=reload-1").status, 303)
            self.assert_logged("q=reload-1", 303, 0)
            status, body, _, url = fetch(opener, f"https://localhost:{P}/admin/?q=reload-2")
            self.assertEqual(status, 403, body)
            self.assertIn("revoked", body.lower())
        finally:
            make_crl(os.path.join(self.srv.dir, "crl"))
            self.srv.edit_config("lifetime_seconds = 601", "lifetime_seconds = 600")
            OnDemand.generation += 1
            reload(self.srv, OnDemand.generation)


class Unanswered(unittest.TestCase):
    def test_a_client_that_does_not_answer_gets_403_7_not_a_hang(self):
        srv = Server(SITES, server_extra="handshake_timeout_ms = 300")
        with open(os.path.join(srv.dir, "step-up.key"), "wb") as f:
            f.write(os.urandom(32))
        make_crl(os.path.join(srv.dir, "crl"))
        srv.start()
        try:
            c = Connection(P, context=pha_context())
            # The request goes out; the client reads nothing (so never sees the CertificateRequest)
            # for longer than handshake_timeout_ms.
            c.sock.sendall(b"GET /admin/?q=silent HTTP/1.1\r\nHost: localhost\r\n\r\n")
            time.sleep(0.8)
            from harness import read_response
            r = read_response(c.file)
            self.assertEqual(r.status, 403)
            self.assertIn("did not answer the certificate request", r.text)
            c.close()
            e = srv.log_entry("q=silent")
            self.assertEqual((e["sc-status"], e["sc-substatus"]), ("403", "7"))
        finally:
            srv.stop()


class StoreDown(unittest.TestCase):
    def test_step_up_with_the_store_unreachable_is_503_never_a_cookie(self):
        dead = free_port()  # nothing listens: Redis "down"
        srv = Server(SITES, server_extra=f'[server.state]\nbackend = "redis"\nurl = "redis://127.0.0.1:{dead}/0"\ntimeout_ms = 200')
        with open(os.path.join(srv.dir, "step-up.key"), "wb") as f:
            f.write(os.urandom(32))
        make_crl(os.path.join(srv.dir, "crl"))
        srv.start()
        try:
            opener, jar = browser()
            status, body, headers, url = fetch(opener, f"https://localhost:{P}/admin/?q=store-down")
            self.assertEqual(status, 503, body)
            self.assertEqual(headers.get("Retry-After"), "1")
            self.assertNotIn("certgate_cert", {c.name for c in jar})
            self.assertTrue(url.startswith(f"https://localhost:{U}/.certgate/step-up"), url)
        finally:
            srv.stop()


class CheckConfig(unittest.TestCase):
    def test_on_demand_is_accepted_and_bad_values_refused(self):
        srv = Server(SITES)
        with open(os.path.join(srv.dir, "step-up.key"), "wb") as f:
            f.write(os.urandom(32))
        make_crl(os.path.join(srv.dir, "crl"))
        r = run(["check-config", "-c", srv.config])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # explain says which method each kind of client gets at an on-demand location.
        def explain(site, path, client):
            r = run(["explain", "-c", srv.config, "--site", site, "--path", path, "--client", client, pki("alice-chain.pem")])
            return r.stdout + r.stderr
        self.assertIn("certificate request (tls13-pha): TLS 1.3 post-handshake authentication",
                      explain("Intranet", "/admin/", "tls13-pha"))
        self.assertIn("certificate request (tls12): TLS 1.2 server-initiated secure renegotiation",
                      explain("Intranet", "/admin/", "tls12"))
        self.assertIn(f"certificate request (tls13): step-up: 303 (401 with Location for other methods) to https://localhost:{U}/",
                      explain("Intranet", "/admin/", "tls13"))
        self.assertIn("certificate request (h2): RST_STREAM HTTP_1_1_REQUIRED", explain("Plain", "/admin/", "h2"))
        self.assertIn("certificate request: none on those bindings", explain("Intranet", "/public/", "tls13"))
        srv.edit_config('client_certificate = "on-demand"', 'client_certificate = "later"')
        r = run(["check-config", "-c", srv.config])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("client_certificate", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
