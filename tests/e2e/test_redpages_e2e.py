"""A hostile pass over the error pages, the request id and x-reason, Cache-Control, the status
page and the forwarded PEM (docs/security.md, "Error pages, status page and certificate
headers"): what a certificate subject, a Host or a URL can put on a page (HTML, JSON, text) and
in the W3C log, HTTP/2's authenticated answers and the browser cache, the admin pages' framing,
and a client's own ssl_client_cert in every spelling. Each test fails on the code before its fix,
or pins an attack that was already refused."""
import datetime
import json
import os
import re
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
from harness import Connection, Server, client_context, free_port, get, pki, run  # noqa: E402

P, P_H2, ADMIN, BACKEND = (free_port() for _ in range(4))
HOSTILE = tempfile.mkdtemp(prefix="certgate-redpages-")
RLO = "\u202e"
XSS_CN = "<script>alert(1)</script>\"'&"


def make_hostile_cert():
    """mallet: issued by the test PKI's issuing CA, with markup, quotes, CR/LF and a
    right-to-left override in its subject (the CA vouches for the key, not for the text)."""
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
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, XSS_CN),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "one\r\ntwo X-Evil: 1"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, RLO + "lmth.exe")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    with open(os.path.join(HOSTILE, "mallet-chain.pem"), "wb") as f:
        f.write(pem + ca.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(HOSTILE, "mallet.key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


SITES = f"""
[[sites]]
name = "Red <b>pages</b> \\"site\\""
id = 1
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  revocation = "off"
  [sites.log]
  fields = ["date", "time", "cs-uri-stem", "cs-uri-query", "cs-host", "sc-status", "sc-substatus",
            "x-request-id", "x-reason"]
  [sites.mapping]
  [[sites.mapping.one_to_one]]
  user = "alice"
  certificate = "@PKI@/alice.pem"
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.locations]]
  path = "/app"
  backend = "http://127.0.0.1:{BACKEND}"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [sites.forward]
  client_cert = "pem"
  underscores_in_headers = true

[[sites]]
name = "Over h2"
id = 2
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P_H2}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  revocation = "off"
  [sites.mapping]
  [[sites.mapping.one_to_one]]
  user = "alice"
  certificate = "@PKI@/alice.pem"
"""


class Backend(threading.Thread):
    """Records each request head it is sent, answers 200."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.heads = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                data = b""
                while b"\r\n\r\n" not in data:
                    d = c.recv(65536)
                    if not d:
                        break
                    data += d
                self.heads.append(data.decode("latin-1"))
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


server = remote = backend = None


def setUpModule():
    global server, remote, backend
    make_hostile_cert()
    backend = Backend(BACKEND)
    backend.start()
    server = Server(SITES, server_extra=f'admin_listen = "127.0.0.1:{ADMIN}"\nadmin_hosts = ["Certgate1.Example.net"]').start()
    remote = Server(SITES.replace(str(P), str(free_port())).replace(str(P_H2), str(free_port())))
    remote.edit_config('detailed_errors = "always"', 'detailed_errors = "never"')
    remote.start()


def tearDownModule():
    assert server.stop() == 0
    assert remote.stop() == 0
    backend.sock.close()
    shutil.rmtree(HOSTILE, ignore_errors=True)


def port_of(srv):
    with open(srv.config) as f:
        return int(re.search(r'listen = "127\.0\.0\.1:(\d+)"', f.read()).group(1))


def mallet(port, path, accept="text/html", srv_port=None):
    c = Connection(port, context=client_context("mallet", cert_dir=HOSTILE))
    try:
        return c.request(path, headers={"Accept": accept})
    finally:
        c.close()


def raw_request(port, raw):
    c = Connection(port)
    try:
        c.sock.sendall(raw)
        return c.file.read()
    finally:
        c.close()


def log_bytes(srv, site_id=1, needle=b"", timeout=3.0):
    """The site's W3C log files, raw, once `needle` is in them."""
    deadline = time.time() + timeout
    while True:
        data = b""
        d = os.path.join(srv.dir, "logs", f"W3SVC{site_id}")
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, name), "rb") as f:
                data += f.read()
        if needle in data or time.time() > deadline:
            return data
        time.sleep(0.1)


class CertificateTextOnPages(unittest.TestCase):
    """The subject of a valid but unmapped certificate (403.16) is shown on a detailed page."""

    def test_html_escapes_markup_and_shows_the_override(self):
        r = mallet(P, "/?html")
        self.assertEqual(r.code(), "403.16")
        self.assertNotIn("<script>", r.text)
        self.assertIn("\\&lt;script\\&gt;alert(1)", r.text)
        # The override would reorder what follows it on screen ("exe.html" read as "lmth.exe").
        self.assertNotIn(RLO, r.text)
        self.assertIn("\\u202E", r.text)

    def test_json_is_valid_and_keeps_the_subject_whole(self):
        r = mallet(P, "/?json", accept="application/json")
        self.assertEqual(r.headers["content-type"], "application/json")
        page = json.loads(r.body)  # strict: raw control characters would fail here
        self.assertIn(XSS_CN.replace("<", "\\<").replace(">", "\\>"), page["details"]["certificate_subject"].replace('\\"', '"'))
        self.assertIn(RLO, page["details"]["certificate_subject"])  # the data, escaped as \u202E
        self.assertNotIn(RLO.encode(), r.body)

    def test_text_shows_the_override(self):
        r = mallet(P, "/?text", accept="text/plain")
        self.assertIn("Certificate subject: ", r.text)
        self.assertNotIn(RLO, r.text)
        # The subject's CR and LF are OpenSSL's \0D\0A: one line each.
        self.assertEqual([l for l in r.text.split("\n") if "X-Evil" in l and not l.startswith(("Reason", "Certificate subject"))], [])

    def test_remote_user_sees_none_of_it_in_any_format(self):
        for accept in ("text/html", "application/json", "text/plain"):
            r = mallet(port_of(remote), "/?remote", accept=accept)
            self.assertEqual(r.status, 403)
            self.assertIn("16", r.text)  # the substatus, as each format writes it
            for secret in ("script", "X-Evil", "lmth", "Issuing CA", "1326", "0x8007052e", "Red "):
                self.assertNotIn(secret, r.text, accept)
            self.assertIn(r.headers["x-request-id"], r.text)

    def test_w3c_reason_stays_one_line_with_the_request_id(self):
        r = mallet(P, "/?w3c")
        rid = r.headers["x-request-id"]
        data = log_bytes(server, needle=rid.encode())
        lines = [l for l in data.split(b"\r\n") if rid.encode() in l]
        self.assertEqual(len(lines), 1, data)
        fields = lines[0].decode().split(" ")
        self.assertEqual(len(fields), 9, lines[0])  # the reason's spaces are IIS's '+'
        self.assertIn("X-Evil:+1", fields[8])
        self.assertNotIn("\r", fields[8])


class RawBytes(unittest.TestCase):
    """Bytes that are not UTF-8, in the Host and the URL: Beast takes them as obs-text."""

    def test_json_page_stays_json(self):
        body = raw_request(P, b"GET /\xff?rawjson HTTP/1.1\r\nHost: lo\xffcal<h>\r\nAccept: application/json\r\n"
                              b"Connection: close\r\n\r\n")
        head, _, body = body.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 400"), head)
        page = json.loads(body.decode("utf-8"))  # failed: 0xff is not UTF-8
        self.assertIn("lo\ufffdcal<h>", page["reason"])

    def test_w3c_log_stays_utf8(self):
        raw_request(P, b"GET /\xfe\xc0\x80?rawlog HTTP/1.1\r\nHost: h\xff\r\nConnection: close\r\n\r\n")
        data = log_bytes(server, needle=b"rawlog")
        line = [l for l in data.split(b"\r\n") if b"rawlog" in l][0]
        line.decode("utf-8")  # failed: the raw bytes were written as they came
        self.assertIn(b" /??? rawlog h? 400 ", line)


class CacheControlOverHttp2(unittest.TestCase):
    """Chromium speaks HTTP/2 to certgate: its authenticated answers must not stay in the
    browser's cache past a revocation either (they carried no Cache-Control over h2)."""

    def curl(self, *extra):
        r = subprocess.run(["curl", "-sS", "--http2", "-D", "-", "-o", "/dev/null", "--cacert", pki("root-ca.pem"),
                            "--cert", pki("alice-chain.pem"), "--key", pki("alice.key"),
                            "--resolve", f"localhost:{P_H2}:127.0.0.1", *extra, f"https://localhost:{P_H2}/data.txt"],
                           capture_output=True, text=True, timeout=20)
        head = r.stdout.lower()  # text=True: the CRLFs are read as newlines
        self.assertTrue(head.startswith("http/2 "), r.stdout + r.stderr)
        return head.split("\n")[0], re.findall(r"^cache-control: (.*)$", head, re.M)

    def test_200_206_head_and_304(self):
        self.assertEqual(self.curl(), ("http/2 200 ", ["private, no-cache"]))
        self.assertEqual(self.curl("-r", "0-3"), ("http/2 206 ", ["private, no-cache"]))
        self.assertEqual(self.curl("-I"), ("http/2 200 ", ["private, no-cache"]))
        self.assertEqual(self.curl("-H", "If-None-Match: *"), ("http/2 304 ", ["private, no-cache"]))

    def test_http11_still_has_it(self):
        for extra in ({}, {"Range": "bytes=0-3"}, {"If-None-Match": "*"}):
            r = get(P_H2, "/data.txt", user="alice", headers=extra)
            self.assertEqual(r.headers.get("cache-control"), "private, no-cache", (r.status, extra))


class Accept(unittest.TestCase):
    def test_many_commas_and_a_long_header_are_answered(self):
        r = mallet(P, "/?commas", accept="," * 6000 + "application/json")
        self.assertEqual(r.headers["content-type"], "application/json")
        r = mallet(P, "/?odd", accept="text/html;q=0, application/jsonx")
        self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8")


class ForwardedPem(unittest.TestCase):
    """Only certgate's ssl_client_cert reaches the backend, whatever the client writes."""

    def test_spellings_folds_and_trailers(self):
        raws = [b"X-A: a\r\n ssl_client_cert: EVIL\r\n",  # obs-fold: folded into X-A's value
                b"SSL_CLIENT_CERT: EVIL\r\nssl-Client-cert: EVIL\r\nSsl_Client_Cert_Chain: EVIL\r\n",
                b"Connection: close, ssl_client_cert\r\n"]
        before = len(backend.heads)
        for extra in raws:
            c = Connection(P, user="alice")
            try:
                r = c.request(raw=b"GET /app/x HTTP/1.1\r\nHost: localhost\r\n" + extra + b"\r\n")
                self.assertEqual(r.status, 200)
            finally:
                c.close()
        c = Connection(P, user="alice")
        try:
            r = c.request(raw=b"POST /app/t HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                              b"Trailer: ssl_client_cert\r\n\r\n0\r\nssl_client_cert: EVIL\r\n\r\n")
            self.assertEqual(r.status, 200)
        finally:
            c.close()
        heads = backend.heads[before:]
        self.assertEqual(len(heads), 4)
        for h in heads:
            names = [l.split(":", 1)[0].lower().replace("-", "_") for l in h.split("\r\n")[1:] if ":" in l]
            self.assertEqual(names.count("ssl_client_cert"), 1, h)
            self.assertEqual(names.count("ssl_client_cert_chain"), 1, h)
            for line in h.split("\r\n"):
                if line.lower().startswith("ssl_client_cert"):
                    self.assertNotIn("EVIL", line)
                    self.assertRegex(line, r"^ssl_client_cert(_chain)?: -----BEGIN CERTIFICATE----- [A-Za-z0-9+/= ]+-----END CERTIFICATE-----$")


class StatusPage(unittest.TestCase):
    def admin(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}{path}", timeout=10) as r:
            return dict(r.headers), r.read().decode()

    def test_cannot_be_framed_or_sniffed(self):
        headers, _ = self.admin("/")
        self.assertIn("frame-ancestors 'none'", headers["Content-Security-Policy"])
        self.assertEqual(headers["X-Frame-Options"], "DENY")
        for path in ("/", "/status.json", "/metrics"):
            self.assertEqual(self.admin(path)[0]["X-Content-Type-Options"], "nosniff", path)

    def with_host(self, path, host):
        with socket.create_connection(("127.0.0.1", ADMIN), timeout=10) as c:
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            data = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                data += d
        return int(data.split(b" ", 2)[1])

    def test_dns_rebinding_gets_no_status(self):
        # A page whose name was rebound to this address: the browser sends that name.
        for path in ("/", "/status.json", "/metrics"):
            self.assertEqual(self.with_host(path, f"rebind.attacker.example:{ADMIN}"), 421, path)
            self.assertEqual(self.with_host(path, f"127.0.0.1:{ADMIN}"), 200, path)
            self.assertEqual(self.with_host(path, "[::1]"), 200, path)
            self.assertEqual(self.with_host(path, f"LOCALHOST:{ADMIN}"), 200, path)
            self.assertEqual(self.with_host(path, f"certgate1.example.NET:{ADMIN}"), 200, path)  # admin_hosts
        self.assertEqual(self.with_host("/", "127.0.0.1.attacker.example"), 421)
        self.assertEqual(self.with_host("/", "[::1"), 421)
        # A balancer's probe names whatever it likes: health says nothing about the configuration.
        self.assertEqual(self.with_host("/healthz", "lb"), 200)
        self.assertEqual(self.with_host("/readyz", "lb"), 200)

    def test_site_name_is_escaped_in_html_and_json(self):
        _, html = self.admin("/")
        self.assertNotIn("<b>pages</b>", html)
        self.assertIn("Red &lt;b&gt;pages&lt;/b&gt; &quot;site&quot;", html)
        _, text = self.admin("/status.json")
        names = [s["name"] for s in json.loads(text)["sites"]]
        self.assertIn('Red <b>pages</b> "site"', names)


class ReopenStorm(unittest.TestCase):
    """logrotate moving the file while SIGUSR1 arrives in bursts and requests keep coming: every
    request's line is written once, whole, in one of the files, each file starting with its
    #Fields header."""

    def test_no_line_lost_split_or_doubled(self):
        import signal
        srv = Server(SITES.replace(str(P), str(free_port())).replace(str(P_H2), str(free_port())))
        srv.start()
        try:
            port = port_of(srv)
            logdir = os.path.join(srv.dir, "logs", "W3SVC1")
            stop = threading.Event()

            def storm():
                n = 0
                while not stop.is_set():
                    if os.path.isdir(logdir):
                        for name in os.listdir(logdir):
                            if name.startswith("u_ex"):
                                os.rename(os.path.join(logdir, name), os.path.join(logdir, f"moved{n}-{name}"))
                    n += 1
                    for _ in range(5):
                        srv.proc.send_signal(signal.SIGUSR1)
                    time.sleep(0.005)

            t = threading.Thread(target=storm)
            t.start()
            try:
                c = Connection(port)
                for i in range(300):
                    self.assertEqual(c.request(f"/nothing?storm{i}").status, 404)
                c.close()
            finally:
                stop.set()
                t.join()
            srv.proc.send_signal(signal.SIGUSR1)
            deadline = time.time() + 5
            while True:
                seen, bad = [], []
                for name in os.listdir(logdir):
                    with open(os.path.join(logdir, name), "rb") as f:
                        lines = f.read().split(b"\r\n")
                    body = [l for l in lines if l and not l.startswith(b"#")]
                    if body:
                        self.assertTrue(any(l.startswith(b"#Fields: ") for l in lines), name)
                    for l in body:
                        fields = l.split(b" ")
                        if len(fields) != 9:
                            bad.append(l)
                        elif fields[3].startswith(b"storm"):
                            seen.append(fields[3].decode())
                if len(seen) >= 300 or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(bad, [])
            self.assertGreater(len(os.listdir(logdir)), 2)  # the storm did move files
            self.assertEqual(sorted(seen), sorted(f"storm{i}" for i in range(300)))
            self.assertIsNone(srv.proc.poll())
        finally:
            self.assertEqual(srv.stop(), 0)


HOSTILE_IIS = r"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE configuration [
  <!ENTITY xxe SYSTEM "file:///etc/passwd">
  <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
  <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<configuration>
  <system.applicationHost>
    <sites>
      <site name="Shop" id="4">
        <application path="/"><virtualDirectory path="/" physicalPath="C:\sites\shop" /></application>
        <bindings><binding protocol="https" bindingInformation="*:443:" /></bindings>
      </site>
    </sites>
  </system.applicationHost>
  <location path="Shop">
    <system.webServer>
      <httpErrors>
        <error statusCode="404" path="&xxe;&d;" responseMode="File" />
        <error statusCode="403" subStatusCode="16" path="a&quot;&#10;  - forged report line&#10;x" responseMode="File" />
        <error statusCode="403" subStatusCode="13" path="C:\sites\shop\ok.htm" responseMode="File" />
        <error statusCode="403" subStatusCode="5" path="C:\sites\shop\..\..\..\etc\shadow" responseMode="File" />
        <error statusCode="403" subStatusCode="4" path="C:/sites/shop/../../../etc/shadow" responseMode="File" />
      </httpErrors>
    </system.webServer>
  </location>
</configuration>
"""


class ImportIisHttpErrors(unittest.TestCase):
    def test_hostile_http_errors(self):
        d = tempfile.mkdtemp(prefix="certgate-redpages-iis-")
        try:
            ah = os.path.join(d, "applicationHost.config")
            with open(ah, "w") as f:
                f.write(HOSTILE_IIS)
            r = run(["import-iis", "--applicationhost", ah, "--path-map", "C:\\sites=/srv/sites", "-o", "-"])
            self.assertEqual(r.returncode, 0, r.stderr)
            # pugixml expands no DTD entity: no file read, no exponential growth.
            self.assertNotIn("root:", r.stdout + r.stderr)
            self.assertIn('"404" = "/srv/sites/shop/&xxe;&d;"', r.stdout)
            self.assertIn('"403.13" = "/srv/sites/shop/ok.htm"', r.stdout)
            # An absolute path with "..", mapped, named a file outside every mapped folder.
            self.assertNotIn("shadow", r.stdout)
            self.assertIn("custom error page for 403.5 (C:\\sites\\shop\\..\\..\\..\\etc\\shadow): a path with '..' segments",
                          r.stderr)
            self.assertIn("custom error page for 403.4 (C:/sites/shop/../../../etc/shadow): a path with '..' segments",
                          r.stderr)
            # A line break in a path forged a line of the report.
            self.assertNotIn("\n  - forged report line", r.stderr)
            self.assertIn("custom error page for 403.16: its path holds control characters", r.stderr)
            self.assertNotIn("403.16", r.stdout)
        finally:
            shutil.rmtree(d, ignore_errors=True)


class CustomPageFiles(unittest.TestCase):
    """[sites.error_pages] names files the administrator chose; still, what is not a small
    regular file never hangs or bloats the server, and a page gone at reload is a warning."""

    def site(self, pages):
        port = free_port()
        return port, f"""
[[sites]]
name = "Pages"
id = 1
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.error_pages]
{pages}
"""

    def test_fifo_device_and_huge_files(self):
        d = tempfile.mkdtemp(prefix="certgate-redpages-cp-")
        try:
            fifo = os.path.join(d, "fifo.html")
            os.mkfifo(fifo)
            with open(os.path.join(d, "huge.html"), "wb") as f:
                f.write(b"x" * (256 * 1024 + 1))
            port, site = self.site(f'  "404" = "{fifo}"\n  "403" = "/dev/zero"')
            srv = Server(site)
            srv.edit_config('detailed_errors = "always"', 'detailed_errors = "never"')
            r = run(["check-config", "-c", srv.config])  # a FIFO read would never end
            self.assertIn("fifo.html", r.stderr + r.stdout)
            self.assertIn("/dev/zero", r.stderr + r.stdout)
            srv.start()
            try:
                self.assertIn("HTTP Error 404", get(port, "/nothing").text)  # certgate's own page
                # Replaced by a file too large, the reload is refused and the running page stays.
                srv.edit_config(f'"404" = "{fifo}"', f'"404" = "{d}/huge.html"')
                import signal
                srv.proc.send_signal(signal.SIGHUP)
                deadline = time.time() + 10
                while "larger than 256 KiB" not in srv.stderr_text() and time.time() < deadline:
                    time.sleep(0.1)
                self.assertIn("larger than 256 KiB", srv.stderr_text())
                self.assertIn("HTTP Error 404", get(port, "/nothing").text)
            finally:
                self.assertEqual(srv.stop(), 0)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_page_gone_at_reload(self):
        d = tempfile.mkdtemp(prefix="certgate-redpages-cp-")
        try:
            page = os.path.join(d, "404.html")
            with open(page, "w") as f:
                f.write("<p>our own 404</p>\n")
            port, site = self.site(f'  "404" = "{page}"')
            srv = Server(site)
            srv.edit_config('detailed_errors = "always"', 'detailed_errors = "never"')
            srv.start()
            try:
                self.assertIn("our own 404", get(port, "/nothing").text)
                os.remove(page)
                import signal
                srv.proc.send_signal(signal.SIGHUP)
                deadline = time.time() + 10
                while "reloaded" not in srv.stderr_text() and time.time() < deadline:
                    time.sleep(0.1)
                self.assertIn("cannot read", srv.stderr_text())
                r = get(port, "/nothing")
                self.assertEqual(r.status, 404)
                self.assertIn("HTTP Error 404", r.text)  # certgate's page now
            finally:
                self.assertEqual(srv.stop(), 0)
        finally:
            shutil.rmtree(d, ignore_errors=True)


class RequestIds(unittest.TestCase):
    def test_unique_across_loops_and_restarts_and_no_internals(self):
        ids = set()
        for _ in range(20):
            ids.add(get(P, "/nothing-here?rid").headers["x-request-id"])
        self.assertEqual(len(ids), 20)
        # Format: a per-process random prefix, the loop, a count; nothing else (no address, no time).
        for rid in ids:
            self.assertRegex(rid, r"^[0-9a-f]{8}-\d+-\d+$")
        prefixes = {rid.split("-")[0] for rid in ids}
        self.assertEqual(len(prefixes), 1)
        other = get(port_of(remote), "/nothing-here?rid").headers["x-request-id"]
        self.assertNotIn(other.split("-")[0], prefixes)  # another process, another prefix


if __name__ == "__main__":
    unittest.main()
