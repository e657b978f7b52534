"""Files and configuration changes (issue 13, items 13 and 15), against the real binary:
IIS-hidden content (web.config, bin/, App_Data/, dot-segments) is answered 404.8 for static files
and proxied locations, in every spelling Windows would open; and a reload that withdraws trust, a
mapping or a site, or a CRL that revokes a certificate, takes effect at the next request of a
keep-alive connection that was validated before."""
import datetime
import functools
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import PKI, Connection, Server, client_context, free_port, mtls_site, pki, run  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402

P, Q, BACKEND = free_port(), free_port(), free_port()
SOCK = os.path.join(tempfile.mkdtemp(prefix="certgate-files-"), "backend.sock")


def tls_site(name, site_id, port, extra=""):
    return f"""
[[sites]]
name = "{name}"
id = {site_id}
root = "www"
ssl_flags = ["Ssl"]
{extra}
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
"""


HIDDEN_SITES = tls_site("Files", 1, P) + f"""
  [[sites.locations]]
  path = "/api"
  backend = "http://127.0.0.1:{BACKEND}"
  [[sites.locations]]
  path = "/raw"
  backend = "http://127.0.0.1:{BACKEND}"
  hidden_segments = []
  allow_dot_segments = true
""" + tls_site("Custom", 2, Q, 'hidden_segments = ["Secret"]\nallow_dot_segments = true')

CONTENT = {
    "web.config": "<connectionStrings>Password=hunter2</connectionStrings>",
    "bin/x.dll": "MZ-secret-dll",
    "App_Data/db.mdf": "secret-database",
    ".git/config": "[remote] url=secret",
    ".env": "SECRET=hunter2",
    ".htpasswd": "admin:$secret",
    "secret/x.txt": "custom-hidden",
    ".well-known/security.txt": "Contact: mailto:security@demo.test",
    "binary/ok.txt": "not hidden: bin is a whole segment",
}

backend = None
files = None


def setUpModule():
    global backend, files
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"),
                                str(BACKEND), SOCK], stdout=subprocess.PIPE, text=True)
    assert backend.stdout.readline().strip() == "ready"
    files = Server(HIDDEN_SITES, threads=1)
    for rel, text in CONTENT.items():
        path = os.path.join(files.dir, "www", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    try:
        files.start()
    except Exception:
        backend.kill()
        raise


def tearDownModule():
    assert files.stop() == 0
    backend.kill()
    backend.wait()


def raw_get(port, target, tag, method="GET"):
    """GET with the target sent byte for byte (no client-side normalisation); `tag` is the query
    that finds the request's W3C line."""
    c = Connection(port)
    try:
        sep = "&" if "?" in target else "?"
        return c.request(raw=f"{method} {target}{sep}{tag} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode(),
                         method=method)
    finally:
        c.close()


class HiddenSegments(unittest.TestCase):
    def assertHidden(self, target, tag, port=P, site_id=1, method="GET"):
        r = raw_get(port, target, tag, method)
        self.assertEqual(r.status, 404, (target, r.status, r.text[:200]))
        if method != "HEAD":
            self.assertEqual(r.code(), "404.8", target)
            for secret in ("hunter2", "MZ-secret", "secret-database", "url=secret", "$secret", "custom-hidden"):
                self.assertNotIn(secret, r.text, target)
        e = files.log_entry(tag, site_id=site_id)
        self.assertEqual((e["sc-status"], e["sc-substatus"]), ("404", "8"), target)

    def test_iis_hidden_segments_and_dot_segments_are_404_8_and_logged(self):
        for i, target in enumerate(["/web.config", "/bin/x.dll", "/App_Data/db.mdf", "/.git/config",
                                    "/.env", "/.htpasswd", "/bin/", "/App_Data/"]):
            self.assertHidden(target, f"plain{i}")
        self.assertHidden("/web.config", "head", method="HEAD")

    def test_case_variants(self):
        for i, target in enumerate(["/WEB.CONFIG", "/Web.Config", "/Bin/x.dll", "/BIN/x.dll",
                                    "/app_data/db.mdf", "/APP_DATA/db.mdf", "/.GIT/config"]):
            self.assertHidden(target, f"case{i}")

    def test_encoded_and_windows_spellings(self):
        # What the path normaliser decodes (%2e, %2f, %5c) and what Windows ignores when it opens
        # a file (trailing dots and spaces, the ::$DATA stream): a Windows backend would serve
        # web.config for each of these.
        for i, target in enumerate(["/%2egit/config", "/%2Egit/config", "/.git%2fconfig", "/%2e%65nv",
                                    "/web%2econfig", "/web.config.", "/web.config%20", "/web.config.%20.",
                                    "/web.config::$DATA", "/web.config:stream:$DATA", "/bin%5cx.dll",
                                    "/x/../web.config", "/./bin/x.dll", "//App_Data//db.mdf"]):
            self.assertHidden(target, f"enc{i}")

    def test_short_8_3_names_do_not_exist_on_linux(self):
        # WEB~1.CON is web.config only on a Windows volume with 8.3 names; here it is another
        # (missing) file name: 404.0, not the content.
        r = raw_get(P, "/WEB~1.CON", "short")
        self.assertEqual(r.code(), "404")
        self.assertNotIn("hunter2", r.text)
        self.assertEqual(files.log_entry("short")["sc-substatus"], "0")

    def test_proxied_locations_are_filtered_before_the_backend(self):
        for i, target in enumerate(["/api/web.config", "/api/.git/config", "/api/bin/x", "/api/App_Data/%2e"]):
            self.assertHidden(target, f"proxied{i}")
        reply = json.loads(raw_get(P, "/api/ok", "proxied-ok").body)
        self.assertEqual(reply["path"], "/api/ok?proxied-ok")

    def test_a_location_can_opt_out(self):
        for i, target in enumerate(["/raw/web.config", "/raw/.git/config"]):
            r = raw_get(P, target, f"optout{i}")
            self.assertEqual(r.status, 200, (target, r.text[:200]))
            self.assertTrue(json.loads(r.body)["path"].startswith(target))

    def test_well_known_and_lookalikes_are_served(self):
        r = raw_get(P, "/.well-known/security.txt", "wellknown")
        self.assertEqual(r.status, 200)
        self.assertIn("Contact", r.text)
        r = raw_get(P, "/binary/ok.txt", "binary")
        self.assertEqual(r.status, 200)

    def test_site_list_replaces_the_default_and_dot_segments_can_be_allowed(self):
        r = raw_get(Q, "/web.config", "custom-webconfig")
        self.assertEqual(r.status, 200)
        r = raw_get(Q, "/.env", "custom-env")
        self.assertEqual(r.status, 200)
        self.assertHidden("/SECRET/x.txt", "custom-secret", port=Q, site_id=2)
        self.assertHidden("/secret./x.txt", "custom-secret-dot", port=Q, site_id=2)

    def test_bad_hidden_segment_is_a_config_error(self):
        d = tempfile.mkdtemp(prefix="certgate-files-cfg-")
        cfg = os.path.join(d, "certgate.toml")
        with open(cfg, "w") as f:
            f.write(tls_site("Bad", 1, free_port(), 'hidden_segments = ["a/b"]').replace("@PKI@", PKI))
        r = run(["check-config", "-c", cfg])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"certgate\.toml:\d+:\d+: sites\[0\]\.hidden_segments: \"a/b\" is not a path segment name")


# ---- item 15: a reload or a CRL takes effect on open connections --------------------------------

def reload(server, generation):
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while f"configuration generation {generation}" not in server.stderr_text():
        if "reload refused" in server.stderr_text() or time.time() > deadline:
            raise AssertionError("reload failed: " + server.stderr_text())
        time.sleep(0.05)


def make_crl(folder, revoked_pem=None):
    """issuing-ca's CRL (valid for a day), listing `revoked_pem` if given; plus root-ca's CRL,
    so that cache-only revocation has both links of alice's chain."""
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
    if revoked_pem:
        with open(pki(revoked_pem), "rb") as f:
            serial = x509.load_pem_x509_certificate(f.read()).serial_number
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(now - datetime.timedelta(seconds=30)).build())
    crl = b.sign(key, hashes.SHA256())
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "issuing-ca.crl"), "wb") as f:
        f.write(crl.public_bytes(serialization.Encoding.DER))
    with open(pki("crl/root-ca.crl"), "rb") as src, open(os.path.join(folder, "root-ca.crl"), "wb") as f:
        f.write(src.read())


def mtls_server(client_certificates, extra="", site_keys=""):
    port = free_port()
    flags = 'ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]'
    text = mtls_site("Mtls", port, 3, client_certificates).replace(flags, flags + "\n" + site_keys)
    server = Server(text + extra, threads=1)
    return server.start(), port


def closed(conn):
    """Whether the server closed the connection (EOF) rather than waiting for a request."""
    try:
        conn.sock.settimeout(3)
        return conn.sock.recv(1) == b""
    except (ConnectionError, socket.timeout, OSError):
        return True


class ReloadOnOpenConnections(unittest.TestCase):
    def test_reload_removing_a_trusted_ca_applies_to_the_next_request_on_the_connection(self):
        server, port = mtls_server('trusted_cas = ["@PKI@/partner-root-ca.pem", "@PKI@/root-ca.pem"]\n'
                                   '  revocation = "off"')
        try:
            c = Connection(port, user="alice")
            self.assertEqual(c.request("/?ca-before").status, 200)
            server.edit_config(f', "{PKI}/root-ca.pem"]', "]")
            reload(server, 2)
            r = c.request("/?ca-after")
            self.assertEqual(r.code(), "403.16", r.text[:300])
            e = server.log_entry("ca-after", site_id=3)
            self.assertEqual((e["sc-status"], e["sc-substatus"]), ("403", "16"))
            # the same certificate on a new connection is refused too (it always was)
            self.assertEqual(Connection(port, user="alice").request("/?ca-new").code(), "403.16")
            c.close()
        finally:
            server.stop()

    def test_reload_removing_the_mapping_applies_to_the_next_request_on_the_connection(self):
        mapping = """
  [sites.mapping]
  [[sites.mapping.one_to_one]]
  user = "azureuser"
  certificate = "@PKI@/alice.pem"
"""
        server, port = mtls_server('trusted_cas = ["@PKI@/root-ca.pem"]\n  revocation = "off"', mapping,
                                   site_keys="anonymous = false")
        try:
            c = Connection(port, user="alice")
            self.assertEqual(c.request("/?map-before").status, 200)
            self.assertEqual(server.log_entry("map-before", site_id=3)["cs-username"], "azureuser")
            server.edit_config('user = "azureuser"', 'user = "azureuser"\n  enabled = false')
            reload(server, 2)
            r = c.request("/?map-after")
            self.assertEqual(r.code(), "403.16", r.text[:300])
            e = server.log_entry("map-after", site_id=3)
            self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"]), ("403", "16", "1326"))
            c.close()
        finally:
            server.stop()

    def test_reload_removing_the_site_answers_421_and_closes(self):
        server, port = mtls_server('trusted_cas = ["@PKI@/root-ca.pem"]\n  revocation = "off"')
        try:
            c = Connection(port, user="alice")
            self.assertEqual(c.request("/?site-before").status, 200)
            server.edit_config('name = "Mtls"', 'name = "Renamed"')
            reload(server, 2)
            r = c.request("/?site-after")
            self.assertEqual(r.status, 421, r.text[:300])
            self.assertIn("reloaded", r.text)
            self.assertTrue(closed(c))
            self.assertEqual(server.log_entry("site-after", site_id=3)["sc-status"], "421")
            # a new connection is served by the renamed site
            self.assertEqual(Connection(port, user="alice").request("/?site-new").status, 200)
        finally:
            server.stop()

    def test_plain_http_connection_outlives_the_removal_of_its_last_site(self):
        # Plain HTTP routes each request by its Host: removing the site of the previous request
        # must not refuse the next request, which names another site of the same address.
        port = free_port()
        sites = "".join(f"""
[[sites]]
name = "{name}"
id = {site_id}
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  protocol = "http"
  host = "{host}"
""" for name, site_id, host in (("PlainA", 5, "a.test"), ("PlainB", 6, "b.test")))
        server = Server(sites, threads=1).start()
        try:
            c = Connection(port, tls=False)
            self.assertEqual(c.request("/?plain-before", host="a.test").status, 200)
            server.edit_config('name = "PlainA"', 'name = "PlainRenamed"')
            reload(server, 2)
            r = c.request("/?plain-after", host="b.test")
            self.assertEqual(r.status, 200, r.text[:300])
            self.assertEqual(server.log_entry("plain-after", site_id=6)["sc-status"], "200")
        finally:
            server.stop()

    def test_a_crl_that_revokes_the_certificate_applies_to_the_next_request_on_the_connection(self):
        folder = tempfile.mkdtemp(prefix="certgate-files-crl-")
        make_crl(folder)
        server, port = mtls_server(f'trusted_cas = ["@PKI@/root-ca.pem"]\n  revocation = "cache-only"\n'
                                   f'  crl_files = ["{folder}"]')
        try:
            c = Connection(port, user="alice")
            self.assertEqual(c.request("/?crl-before").status, 200)
            make_crl(folder, revoked_pem="alice.pem")
            reload(server, 2)
            r = c.request("/?crl-after")
            self.assertEqual(r.code(), "403.13", r.text[:300])
            e = server.log_entry("crl-after", site_id=3)
            self.assertEqual((e["sc-status"], e["sc-substatus"]), ("403", "13"))
            c.close()
        finally:
            server.stop()

    def test_without_a_reload_the_connection_keeps_its_certificate(self):
        # behaviour.md §6: the certificate is not asked for again; every request is decided with
        # it (and the validation cache), so nothing changes while nothing was reloaded.
        server, port = mtls_server('trusted_cas = ["@PKI@/root-ca.pem"]\n  revocation = "off"')
        try:
            c = Connection(port, user="alice")
            for i in range(5):
                self.assertEqual(c.request(f"/?keep{i}").status, 200)
            c.close()
        finally:
            server.stop()


class FetchedCrlOnOpenConnections(unittest.TestCase):
    """A CRL another request fetched, revoking a certificate whose earlier "good" result is cached
    and held by an open connection: the revocation store's epoch moves, and both the connection's
    next request and a new connection are refused at once (not when the old CRL's nextUpdate, 30
    days away, or the cache's hour is reached)."""

    def test_a_fetched_crl_revokes_at_the_next_request_and_an_older_one_cannot_undo_it(self):
        opki = tempfile.mkdtemp(prefix="certgate-files-opki-")
        http_port = free_port()
        subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "online_pki.sh"), opki, str(http_port),
                        str(free_port()), str(free_port()), str(free_port())], check=True, capture_output=True)
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass
        handler = functools.partial(Quiet, directory=os.path.join(opki, "www"))
        crls = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), handler)
        threading.Thread(target=crls.serve_forever, daemon=True).start()
        long_port, fresh_port = free_port(), free_port()
        trust = f'trusted_cas = ["{opki}/root.pem"]\n  url_timeout_ms = 2000\n  retry_seconds = 1'
        server = Server(mtls_site("Long", long_port, 1, trust) +
                        mtls_site("Fresh", fresh_port, 2, trust + "\n  freshness_seconds = 10"), threads=1,
                        test_clock=True).start()
        try:
            ctx = client_context("olga", cert_dir=opki)
            held = Connection(long_port, context=ctx)
            self.assertEqual(held.request("/?olga-good").status, 200)
            self.assertEqual(Connection(long_port, context=ctx).request("/?olga-cached").status, 200)
            with open(os.path.join(opki, "www/issuing.crl"), "rb") as f:
                before_revocation = f.read()
            # The CA revokes olga and publishes a new CRL at the same URL.
            ca = {**os.environ, "CADIR": os.path.join(opki, "ca/issuing")}
            cnf = os.path.join(opki, "ca.cnf")
            subprocess.run(["openssl", "ca", "-config", cnf, "-revoke", os.path.join(opki, "olga.pem")],
                           env=ca, check=True, capture_output=True)
            # Its thisUpdate a later second than the first one's, without waiting for that second.
            later = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() + 2))
            subprocess.run(["openssl", "ca", "-config", cnf, "-gencrl", "-crlexts", "crl_ext", "-crl_lastupdate",
                            later, "-out", os.path.join(opki, "new.pem")], env=ca, check=True, capture_output=True)
            subprocess.run(["openssl", "crl", "-in", os.path.join(opki, "new.pem"), "-outform", "DER", "-out",
                            os.path.join(opki, "www/issuing.crl")], check=True)
            server.shift_clock(11)
            # The Fresh site wants CRLs no older than 10 seconds: its request fetches the new one.
            self.assertEqual(Connection(fresh_port, context=ctx).request("/?olga-fresh").code(), "403.13")
            r = held.request("/?olga-held")
            self.assertEqual(r.code(), "403.13", r.text[:300])
            e = server.log_entry("olga-held", site_id=1)
            self.assertEqual((e["sc-status"], e["sc-substatus"]), ("403", "13"))
            self.assertEqual(Connection(long_port, context=ctx).request("/?olga-new").code(), "403.13")
            held.close()
            # A replay of the older CRL (still within its nextUpdate) at the same URL must not
            # un-revoke her: the store keeps the newest CRL it has verified.
            with open(os.path.join(opki, "www/issuing.crl"), "wb") as f:
                f.write(before_revocation)
            server.shift_clock(22)
            r = Connection(fresh_port, context=ctx).request("/?olga-rollback")
            self.assertEqual(r.code(), "403.13", r.text[:300])
            self.assertIn("older than the one held", server.stderr_text())
        finally:
            server.stop()
            crls.shutdown()


if __name__ == "__main__":
    unittest.main()
