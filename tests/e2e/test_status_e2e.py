"""The admin status page (issue 18 item 10): /status.json and / (HTML, nothing loaded from
elsewhere) after real requests — the site's bindings, its trusted issuers with their expiry,
a CRL fetched from a loopback CRL server and one whose server never answers (failures), the
answers of the last hour by status.substatus and the refusals by reason, the one-to-one
certificate that expires within 30 days (also a /metrics gauge); and admin_allow: a peer outside
it gets no answer."""
import functools
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, get, pki  # noqa: E402

OPKI = tempfile.mkdtemp(prefix="certgate-status-opki-")
HTTP = free_port()
P = free_port()
ADMIN = free_port()


def admin(path, port=None, host="127.0.0.1"):
    with urllib.request.urlopen(f"http://{host}:{port or ADMIN}{path}", timeout=10) as r:
        return r.status, dict(r.headers), r.read().decode()


class StatusPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "online_pki.sh"), OPKI, str(HTTP),
                        str(free_port()), str(free_port()), str(free_port())], check=True, capture_output=True)

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass
        cls.crls = http.server.ThreadingHTTPServer(("127.0.0.1", HTTP), functools.partial(Quiet, directory=os.path.join(OPKI, "www")))
        threading.Thread(target=cls.crls.serve_forever, daemon=True).start()
        # A one-to-one certificate that expires in 10 days.
        d = tempfile.mkdtemp(prefix="certgate-status-")
        cls.soon = os.path.join(d, "soon.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "10", "-subj", "/CN=Expiring Soon", "-keyout", os.path.join(d, "soon.key"),
                        "-out", cls.soon], check=True, capture_output=True)
        site = f"""
[[sites]]
name = "Status Site"
id = 7
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["{OPKI}/root.pem"]
  url_timeout_ms = 1000
  retry_seconds = 1
  [sites.mapping]
  [[sites.mapping.one_to_one]]
  user = "soon"
  certificate = "{cls.soon}"
  [[sites.mapping.many_to_one]]
  name = "Everyone"
  user = "member"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "CN"
    match = "*"
"""
        cls.srv = Server(site, server_extra=f'admin_listen = "127.0.0.1:{ADMIN}"', threads=1).start()
        for _ in range(3):
            assert Connection(P, context=client_context("olga", cert_dir=OPKI)).request("/?olga").status == 200
        assert Connection(P, context=client_context("oscar", cert_dir=OPKI)).request("/?oscar").code() == "403.13"
        cls.dora = Connection(P, context=client_context("dora", cert_dir=OPKI)).request("/?dora").code()
        assert get(P, "/").code() == "403.7"  # no certificate at all

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.crls.shutdown()

    def test_status_json(self):
        status, headers, body = admin("/status.json")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        s = json.loads(body)
        site = s["sites"][0]
        self.assertEqual((site["name"], site["id"]), ("Status Site", 7))
        self.assertEqual(site["bindings"], [f"https://127.0.0.1:{P}"])
        self.assertEqual(len(site["trusted_issuers"]), 1)
        root = site["trusted_issuers"][0]
        self.assertIn("CN=", root["name"])
        self.assertRegex(root["not_after"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertGreater(root["days_left"], 30)
        # answers by status.substatus over the last hour
        answers = {(a["status"], a["substatus"]): a["count"] for a in s["answers_last_hour"]}
        self.assertEqual(answers[(200, 0)], 3)
        # oscar (revoked) and dora (her CRL's server never answers: offline) are both 403.13
        self.assertEqual(self.dora, "403.13")
        self.assertEqual(answers[(403, 13)], 2)
        self.assertEqual(answers[(403, 7)], 1)
        # refusals by reason, from the catalogue
        reasons = {r["reason"]: r for r in s["top_refusals"]}
        self.assertIn("403_13_revoked", reasons, s["top_refusals"])
        self.assertEqual(reasons["403_13_revoked"]["count"], 1)
        offline = [r for r in s["top_refusals"] if r["substatus"] == 13 and r["reason"] != "403_13_revoked"]
        self.assertEqual([r["count"] for r in offline], [1], s["top_refusals"])
        self.assertTrue(any(r["status"] == 403 and r["substatus"] == 7 for r in s["top_refusals"]))
        self.assertTrue(all(r["status"] >= 400 for r in s["top_refusals"]))
        # the CRL fetched from the loopback server, and the one nobody answers
        crls = {c["url"]: c for c in s["revocation"]["crls"]}
        good = crls[f"http://127.0.0.1:{HTTP}/issuing.crl"]
        self.assertTrue(good["cached"])
        self.assertIsNotNone(good["last_fetch"])
        self.assertIsNotNone(good["next_update"])
        self.assertGreaterEqual(good["fetches_ok"], 1)
        self.assertEqual(good["failures"], 0)
        dead = [c for c in s["revocation"]["crls"] if c["failures"] >= 1]
        self.assertEqual(len(dead), 1, s["revocation"]["crls"])
        self.assertFalse(dead[0]["cached"])
        self.assertNotEqual(dead[0]["last_error"], "")
        self.assertIsInstance(s["revocation"]["ocsp_responders"], list)
        # the one-to-one certificate expiring in 10 days
        soon = [c for c in s["expiring_within_30_days"] if c["kind"] == "one-to-one"]
        self.assertEqual(len(soon), 1, s["expiring_within_30_days"])
        self.assertIn("soon", soon[0]["name"])
        self.assertIn(soon[0]["days_left"], (9, 10))
        self.assertEqual(site["one_to_one"][0]["origin"], soon[0]["origin"])
        self.assertFalse([c for c in s["expiring_within_30_days"] if c["kind"] == "trusted-ca"])

    def test_html_is_self_contained(self):
        status, headers, body = admin("/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        self.assertIn("default-src 'none'", headers["Content-Security-Policy"])
        self.assertIn("Status Site", body)
        self.assertIn("Expiring within 30 days", body)
        self.assertIn("CN=Expiring Soon", body)
        self.assertIn(f"http://127.0.0.1:{HTTP}/issuing.crl", body)
        self.assertIn("403.13", body)
        # nothing loaded from elsewhere: no scripts, no external URLs in src/href
        self.assertNotIn("<script", body.lower())
        for url in re.findall(r'(?:src|href)="([^"]*)"', body):
            self.assertTrue(url.startswith("/"), url)

    def test_expiry_gauges_in_metrics(self):
        _, _, text = admin("/metrics")
        m = re.search(r'^certgate_certificates_expiring (\d+)$', text, re.M)
        self.assertEqual(m.group(1), "1")
        soon = re.search(r'^certgate_certificate_expiry_seconds\{site="Status Site",kind="one-to-one",name="([^"]*)"\} (-?\d+)$',
                         text, re.M)
        self.assertIsNotNone(soon, text)
        self.assertTrue(8 * 86400 < int(soon.group(2)) <= 10 * 86400)
        self.assertRegex(text, r'certgate_certificate_expiry_seconds\{site="Status Site",kind="trusted-ca",name="[^"]+"\} \d+')

    def test_unknown_path_is_404(self):
        with self.assertRaises(urllib.error.HTTPError) as e:
            admin("/status.html")
        self.assertEqual(e.exception.code, 404)


class AdminAllow(unittest.TestCase):
    def test_peer_outside_admin_allow_gets_nothing(self):
        port = free_port()
        site = f"""
[[sites]]
name = "A"
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{free_port()}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
"""
        srv = Server(site, server_extra=f'admin_listen = "127.0.0.1:{port}"\nadmin_allow = ["127.0.0.1/32"]').start()
        try:
            self.assertEqual(admin("/status.json", port)[0], 200)
            c = socket.socket()
            c.settimeout(5)
            c.bind(("127.0.0.2", 0))  # a loopback source outside the allowed /32
            c.connect(("127.0.0.1", port))
            try:
                c.sendall(b"GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(c.recv(4096), b"")
            except ConnectionResetError:
                pass
            finally:
                c.close()
        finally:
            srv.stop()

    def test_client_certificate_required_with_admin_client_cas(self):
        port = free_port()
        site = f"""
[[sites]]
name = "A"
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{free_port()}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
"""
        extra = (f'admin_listen = "127.0.0.1:{port}"\nadmin_client_cas = ["{pki("root-ca.pem")}"]\n'
                 f'admin_certificate = "{pki("server-chain.pem")}"\nadmin_key = "{pki("server.key")}"')
        srv = Server(site, server_extra=extra).start()
        try:
            # alice's certificate (issued under root-ca): the status page, over TLS
            r = Connection(port, user="alice").request("/status.json")
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(r.body)["sites"][0]["name"], "A")
            # no certificate: the handshake (or the first read, in TLS 1.3) fails; no answer
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                c = Connection(port)
                c.request("/status.json")
            # plain HTTP is not served either
            with self.assertRaises((urllib.error.URLError, ConnectionError, OSError)):
                admin("/status.json", port)
        finally:
            srv.stop()

    def test_admin_tls_keys_go_together(self):
        srv = Server("", server_extra='admin_certificate = "x.pem"')
        r = subprocess.run([os.environ.get("CERTGATE", "build/certgate"), "check-config", "-c", srv.config],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("server.admin_certificate: set admin_client_cas too", r.stderr)

    def test_bad_admin_allow_is_a_config_error(self):
        srv = Server("", server_extra='admin_allow = ["10.0.0.0/33"]')
        r = subprocess.run([os.environ.get("CERTGATE", "build/certgate"), "check-config", "-c", srv.config],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("admin_allow: not an address block: \"10.0.0.0/33\"", r.stderr)


if __name__ == "__main__":
    unittest.main()
