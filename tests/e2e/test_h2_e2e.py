"""The main scenarios over HTTP/1.1 and HTTP/2 side by side, with curl (--http1.1 / --http2) and
client certificates: the same status, substatus, win32, user and page over both, and the W3C
line's cs-version saying which protocol carried the request. spec: issue 16 (HTTP/2)."""
import base64
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import CERTGATE, Server, client_context, free_port, pki  # noqa: E402
import h2frames  # noqa: E402

P = free_port()
H1_ONLY = free_port()
H2_ONLY = free_port()
BACKEND = free_port()
DEAD = free_port()  # nothing listens here
ODP, ODU, ODQ = free_port(), free_port(), free_port()  # on demand with step-up, its step-up binding, without
SOCK = os.path.join("/tmp", f"certgate-h2-backend-{BACKEND}.sock")

SITES = f"""
[[sites]]
name = "Main"
id = 1
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
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
  [sites.basic]
  enabled = true
  users_file = "users.txt"
  realm = "certgate test"
  [[sites.locations]]
  path = "/accept"
  ssl_flags = ["Ssl", "SslNegotiateCert"]
  anonymous = false
  [[sites.locations]]
  path = "/app"
  backend = "http://127.0.0.1:{BACKEND}"
  [[sites.locations]]
  path = "/big"
  backend = "http://127.0.0.1:{BACKEND}"
  [[sites.locations]]
  path = "/dead"
  backend = "http://127.0.0.1:{DEAD}"
  [sites.log]
  fields = ["date", "time", "cs-method", "cs-uri-stem", "cs-uri-query", "cs-username", "sc-status",
            "sc-substatus", "sc-win32-status", "cs-version", "cs-host", "x-request-id", "x-reason"]

[[sites]]
name = "Other"
id = 2
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  host = "site-b.test"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [[sites.bindings]]
  listen = "127.0.0.1:{H1_ONLY}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  protocols = ["http/1.1"]
  [[sites.bindings]]
  listen = "127.0.0.1:{H2_ONLY}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  protocols = ["h2"]

[[sites]]
name = "Demand"
id = 3
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{ODP}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  client_certificate = "on-demand"
  [[sites.bindings]]
  listen = "127.0.0.1:{ODU}"
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
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [sites.step_up]
  url = "https://localhost:{ODU}/"
  key_file = "step-up.key"
  [sites.token_login]
  cookie_key_file = "cookie.key"
  [sites.log]
  fields = ["cs-method", "cs-uri-stem", "cs-uri-query", "cs-username", "sc-status", "sc-substatus",
            "sc-win32-status", "cs-version"]

[[sites]]
name = "DemandPlain"
id = 4
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{ODQ}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  client_certificate = "on-demand"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  [sites.mapping]
  enabled = true
  [[sites.mapping.one_to_one]]
  user = "azureuser"
  certificate = "@PKI@/alice.pem"
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [sites.log]
  fields = ["cs-method", "cs-uri-stem", "cs-uri-query", "cs-username", "sc-status", "sc-substatus",
            "sc-win32-status", "cs-version"]
"""

server = None
backend = None


def setUpModule():
    global server, backend
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"), str(BACKEND), SOCK],
                               stdout=subprocess.PIPE, text=True)
    assert backend.stdout.readline().strip() == "ready"
    server = Server(SITES)
    r = subprocess.run([CERTGATE, "users", "add", "-f", os.path.join(server.dir, "users.txt"), "carl", "--password-stdin"],
                       input="carl-pw\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for name in ("step-up.key", "cookie.key"):
        with open(os.path.join(server.dir, name), "wb") as f:
            f.write(os.urandom(32))
    server.start()


def tearDownModule():
    assert server.stop() == 0
    backend.kill()
    backend.wait()


def curl(protocol, path, user=None, headers=None, host="localhost", extra=(), port=P):
    """(status, headers dict, body, http_version) as curl saw them."""
    args = ["curl", "-sS", "-D", "-", "--http2" if protocol == "h2" else "--http1.1", "--max-time", "20",
            "--cacert", pki("root-ca.pem"), "--resolve", f"{host}:{port}:127.0.0.1", "-w", "\n%{http_version}"]
    if user:
        chain = pki(f"{user}-chain.pem")
        args += ["--cert", chain if os.path.exists(chain) else pki(f"{user}.pem"), "--key", pki(f"{user}.key")]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run(args + list(extra) + [f"https://{host}:{port}{path}"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    version = text.rsplit(b"\n", 1)[1].decode()
    text = text.rsplit(b"\n", 1)[0]
    # The last head (an HTTP/1.1 retry after HTTP_1_1_REQUIRED shows only its own).
    head, _, body = text.partition(b"\r\n\r\n")
    while head.split(b" ")[1].startswith(b"1"):  # an interim answer (100 Continue) first
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body, version


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class BothProtocols(unittest.TestCase):
    def check(self, name, user, path, status, substatus, win32, username, headers=None, host="localhost",
              log_version=None):
        results = {}
        for proto, version, logged in (("h1", "1.1", "HTTP/1.1"), ("h2", "2", "HTTP/2")):
            with self.subTest(scenario=name, protocol=proto):
                q = f"{name}-{proto}"
                sep = "&" if "?" in path else "?"
                st, hdrs, body, v = curl(proto, f"{path}{sep}{q}", user, headers, host)
                self.assertEqual(st, status, body[:300])
                self.assertEqual(v, log_version[0] if log_version else version)
                entry = server.log_entry(q)
                self.assertEqual(entry["sc-status"], str(status))
                self.assertEqual(entry["sc-substatus"], str(substatus))
                self.assertEqual(entry["sc-win32-status"], str(win32))
                self.assertEqual(entry["cs-username"], username)
                self.assertEqual(entry["cs-version"], log_version[1] if log_version else logged)
                results[proto] = (hdrs, body)
        return results

    def test_mapped_certificate_is_200_with_its_user(self):
        r = self.check("mapped", "alice", "/", 200, 0, 0, "azureuser")
        self.assertEqual(r["h1"][1], r["h2"][1])
        self.assertIn(b"hello from /", r["h2"][1])

    def test_no_certificate_is_403_7(self):
        r = self.check("nocert", None, "/", 403, 7, 5, "-")
        self.assertIn(b"403.7", r["h2"][1])

    def test_revoked_is_403_13(self):
        r = self.check("revoked", "carol", "/", 403, 13, 2148081680, "-")
        self.assertIn(b"was revoked on", r["h2"][1])

    def test_untrusted_is_403_16(self):
        self.check("untrusted", "mallory", "/", 403, 16, 2148204809, "-")

    def test_expired_is_403_17(self):
        r = self.check("expired", "dave", "/", 403, 17, 2148204801, "-")
        self.assertIn(b"expired", r["h2"][1])

    def test_basic_fallback(self):
        self.check("basic-ok", None, "/accept/", 200, 0, 0, "carl", headers=basic("carl", "carl-pw"))
        r = self.check("basic-none", None, "/accept/", 401, 2, 5, "-")
        self.assertEqual(r["h2"][0]["www-authenticate"], 'Basic realm="certgate test", charset="UTF-8"')

    def test_static_range_and_conditional(self):
        r = self.check("range", "alice", "/data.txt", 206, 0, 0, "azureuser", headers={"Range": "bytes=2-4"})
        self.assertEqual(r["h2"][1], b"234")
        self.assertEqual(r["h2"][0]["content-range"], "bytes 2-4/10")
        etag = r["h2"][0]["etag"]
        self.check("not-modified", "alice", "/data.txt", 304, 0, 0, "azureuser", headers={"If-None-Match": etag})

    def test_other_sites_authority_is_421(self):
        r = self.check("misdirected", "alice", "/", 421, 0, 0, "-", headers={"Host": "site-b.test"})
        self.assertIn(b"Other", r["h2"][1])

    def test_proxy_forwards_with_identity_headers(self):
        r = self.check("proxy", "alice", "/app/x", 200, 0, 0, "azureuser")
        for proto in ("h1", "h2"):
            seen = dict((k.lower(), v) for k, v in json.loads(r[proto][1])["headers"])
            self.assertEqual(seen["x-remote-user"], "azureuser")
            self.assertNotIn("te", seen)

    def test_proxy_spoofed_identity_header_is_removed(self):
        r = self.check("spoof", "alice", "/app/x", 200, 0, 0, "azureuser", headers={"X-Remote-User": "root"})
        seen = [(k.lower(), v) for k, v in json.loads(r["h2"][1])["headers"]]
        self.assertEqual([v for k, v in seen if k == "x-remote-user"], ["azureuser"])

    def test_proxy_streams_a_large_upload_and_download(self):
        body = os.urandom(3 * 1024 * 1024)
        path = os.path.join(server.dir, "upload.bin")
        with open(path, "wb") as f:
            f.write(body)
        for proto in ("h1", "h2"):
            st, _, out, v = curl(proto, f"/app/up?upload-{proto}", "alice", extra=("--data-binary", "@" + path))
            self.assertEqual(st, 200)
            got = json.loads(out)
            self.assertEqual((got["method"], got["body_bytes"]), ("POST", len(body)))
            self.assertEqual(got["sha256"], hashlib.sha256(body).hexdigest())
            st, _, out, v = curl(proto, "/big?n=5000000", "alice")
            self.assertEqual((st, len(out)), (200, 5000000))
        self.assertEqual(server.log_entry("upload-h2")["cs-version"], "HTTP/2")

    def test_backend_down_is_502_3(self):
        r = self.check("dead", "alice", "/dead/x", 502, 3, 12029, "azureuser")
        self.assertIn(b"502.3", r["h2"][1])


class SharedFeaturesOverBoth(unittest.TestCase):
    """Request ids, Cache-Control, on-demand certificates and the token-login endpoints give
    the same result over HTTP/2 as over HTTP/1.1."""

    def test_request_id_on_a_403_page_is_the_w3c_lines(self):
        for proto in ("h1", "h2"):
            with self.subTest(protocol=proto):
                q = f"rid-{proto}"
                st, hdrs, body, _ = curl(proto, f"/?{q}")
                self.assertEqual(st, 403)
                rid = hdrs.get("x-request-id")
                self.assertTrue(rid, hdrs)
                self.assertIn(rid.encode(), body)  # shown on the page
                entry = server.log_entry(q)
                self.assertEqual(entry["x-request-id"], rid)
                self.assertIn("did+not+send", entry["x-reason"])
        self.assertNotEqual(server.log_entry("rid-h1")["x-request-id"], server.log_entry("rid-h2")["x-request-id"])

    def test_each_stream_has_its_own_request_id(self):
        out = subprocess.run(["curl", "-sS", "--http2", "--max-time", "20", "--cacert", pki("root-ca.pem"),
                              "--resolve", f"localhost:{P}:127.0.0.1", "-o", "/dev/null", "-o", "/dev/null",
                              f"https://localhost:{P}/?rid-s1", f"https://localhost:{P}/?rid-s2"],
                             capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        a, b = server.log_entry("rid-s1"), server.log_entry("rid-s2")
        self.assertEqual(a["cs-version"], "HTTP/2")
        self.assertNotEqual(a["x-request-id"], b["x-request-id"])
        self.assertNotEqual(a["x-request-id"], "-")

    def test_authenticated_answer_has_cache_control(self):
        for proto in ("h1", "h2"):
            with self.subTest(protocol=proto):
                st, hdrs, _, _ = curl(proto, f"/?cc-{proto}", "alice")
                self.assertEqual(st, 200)
                self.assertEqual(hdrs.get("cache-control"), "private, no-cache")
                # An anonymous answer carries none.
                st, hdrs, _, _ = curl(proto, f"/public/?cc-anon-{proto}", host="site-b.test")
                self.assertEqual(st, 200)
                self.assertNotIn("cache-control", hdrs)

    @staticmethod
    def entries(query, site_id):
        """Every W3C line of `site_id` whose cs-uri-query is `query`, oldest first."""
        fields, found = None, []
        for line in server.log_lines(site_id):
            if line.startswith("#Fields: "):
                fields = line[len("#Fields: "):].split(" ")
            elif not line.startswith("#") and fields:
                entry = dict(zip(fields, line.split(" ")))
                if entry.get("cs-uri-query") == query:
                    found.append(entry)
        return found

    def follow(self, proto, url, port_extra):
        """curl -L with a cookie jar and alice's certificate: (status, http_version, body)."""
        jar = os.path.join(server.dir, f"jar-{proto}-{port_extra}")
        args = ["curl", "-sS", "-L", "--max-time", "20", "--http2" if proto == "h2" else "--http1.1",
                "--cacert", pki("root-ca.pem"), "-c", jar, "-b", jar,
                "--cert", pki("alice-chain.pem"), "--key", pki("alice.key"),
                "--resolve", f"localhost:{ODP}:127.0.0.1", "--resolve", f"localhost:{ODU}:127.0.0.1",
                "--resolve", f"localhost:{ODQ}:127.0.0.1", "-w", "\n%{http_code} %{http_version}", *port_extra, url]
        out = subprocess.run(args, capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        body, _, tail = out.stdout.rpartition(b"\n")
        code, version = tail.decode().split(" ")
        return int(code), version, body

    def test_on_demand_with_step_up(self):
        # HTTP/2 does not let the server ask later: the step-up binding asks at its handshake and
        # its cookie stands for the certificate.
        for proto, version in (("h1", "1.1"), ("h2", "2")):
            with self.subTest(protocol=proto):
                q = f"od-step-{proto}"
                code, v, body = self.follow(proto, f"https://localhost:{ODP}/admin/?{q}", ())
                self.assertEqual(code, 200, body[:300])
                self.assertEqual(v, version)
                self.assertIn(b"hello from /admin", body)
                server.log_entry(q, site_id=3)
                lines = self.entries(q, 3)
                logged = "HTTP/2" if proto == "h2" else "HTTP/1.1"
                # Over HTTP/1.1 curl answers post-handshake authentication; a stream is first sent
                # to the step-up binding, then served with the cookie, over HTTP/2 throughout.
                expected = [("303", "-", logged), ("200", "azureuser", logged)] if proto == "h2" else \
                    [("200", "azureuser", logged)]
                self.assertEqual([(e["sc-status"], e["cs-username"], e["cs-version"]) for e in lines], expected)
        # The public part asks for nothing: no redirect, no retry.
        code, v, _ = self.follow("h2", f"https://localhost:{ODP}/public/?od-public", ())
        self.assertEqual((code, v), (200, "2"))

    def test_on_demand_without_step_up_is_retried_over_http11(self):
        # HTTP_1_1_REQUIRED: curl retries over HTTP/1.1 (TLS 1.2 here), where renegotiation asks.
        code, v, body = self.follow("h2", f"https://localhost:{ODQ}/admin/?od-retry", ("--tls-max", "1.2"))
        self.assertEqual((code, v), (200, "1.1"), body[:300])
        server.log_entry("od-retry", site_id=4)
        self.assertEqual([(e["sc-status"], e["cs-username"], e["cs-version"]) for e in self.entries("od-retry", 4)],
                         [("200", "azureuser", "HTTP/1.1")])

    def test_on_demand_without_step_up_resets_the_stream_with_http_1_1_required(self):
        c = h2frames.Client(ODQ)
        try:
            c.get(1, "/admin/?od-rst")
            frames = c.frames_until(lambda f: f[2] == 1 and f[0] in (h2frames.RST_STREAM, h2frames.HEADERS))
            last = frames[-1]
            self.assertIsNotNone(last)
            self.assertEqual(last[0], h2frames.RST_STREAM)
            self.assertEqual(int.from_bytes(last[3], "big"), h2frames.HTTP_1_1_REQUIRED)
            # The connection stays usable for other streams.
            c.get(3, "/public/?od-rst-public")
            frames = c.frames_until(lambda f: f[2] == 3 and f[0] == h2frames.HEADERS)
            self.assertIsNotNone(frames[-1])
        finally:
            c.close()
        self.assertEqual(server.log_entry("od-rst-public", site_id=4)["sc-status"], "200")

    def test_token_endpoints_are_answered_over_http11(self):
        # Over HTTP/2 the endpoints reset the stream with HTTP_1_1_REQUIRED (docs/token-login.md):
        # curl's retry gets the challenge over HTTP/1.1.
        for path, method in (("/.certgate/token/challenge", "GET"), ("/.certgate/token/response", "POST")):
            c = h2frames.Client(ODP)
            try:
                c.headers(1, h2frames.request_block(path, method=method))
                last = c.frames_until(lambda f: f[2] == 1 and f[0] in (h2frames.RST_STREAM, h2frames.HEADERS))[-1]
                self.assertEqual(last[0], h2frames.RST_STREAM, path)
                self.assertEqual(int.from_bytes(last[3], "big"), h2frames.HTTP_1_1_REQUIRED, path)
            finally:
                c.close()
        st, hdrs, body, v = curl("h2", "/.certgate/token/challenge", port=ODP)
        self.assertEqual((st, v), (200, "1.1"), body[:300])
        self.assertIn("nonce", json.loads(body))


class ProxyFlowControl(unittest.TestCase):
    def test_a_client_that_never_opens_its_window_gets_one_window_of_a_proxied_answer(self):
        from h2frames import DATA, Client
        c = Client(P, user="alice")
        c.get(1, "/big?n=5000000")
        c.sock.settimeout(1.0)
        data = 0
        try:
            while True:
                f = c.read_frame()
                if f is None:
                    break
                if f[0] == DATA and f[2] == 1:
                    data += len(f[3])
        except (socket.timeout, TimeoutError):
            pass  # nothing more comes: the rest waits at the backend
        c.close()
        self.assertEqual(data, 65535)


def negotiated(port, offer):
    ctx = client_context()
    ctx.set_alpn_protocols(offer)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.selected_alpn_protocol()


class Alpn(unittest.TestCase):
    def test_h2_first_by_default_and_http11_for_clients_without_h2(self):
        self.assertEqual(negotiated(P, ["http/1.1", "h2"]), "h2")
        self.assertEqual(negotiated(P, ["http/1.1"]), "http/1.1")

    def test_binding_protocols_restrict_what_is_offered(self):
        self.assertEqual(negotiated(H1_ONLY, ["h2", "http/1.1"]), "http/1.1")
        self.assertEqual(negotiated(H2_ONLY, ["h2", "http/1.1"]), "h2")
        # A client offering only what the binding does not speak is refused in the handshake.
        with self.assertRaises(ssl.SSLError) as e:
            negotiated(H2_ONLY, ["http/1.1"])
        self.assertIn("NO APPLICATION PROTOCOL", str(e.exception).upper())
        with self.assertRaises(ssl.SSLError):
            negotiated(H1_ONLY, ["h2"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
