"""Hostile pass over the keep-alive request path of issue 19 (reused per-loop exchanges, the
response head serialised into a reused string, the W3C line built in a reused buffer, the file
cache's shared pre-serialised answers, the TLS head read and answer written at once, the idle
wait by peeking), on the real binary over real sockets, TLS and plain HTTP, HTTP/1.1 and
HTTP/1.0 keep-alive. One loop thread, so every connection shares the same spares: nothing of one
request (headers, user, method, target, body, answer) may show in another's answer, in what is
forwarded to a backend, or in its W3C line; pipelined and trickled requests are all answered."""
import json
import os
import random
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import ssl  # noqa: E402

from harness import Connection, Server, client_context, free_port, read_response  # noqa: E402
from listeners import ConnectionServer, answer, read_request  # noqa: E402

P = free_port()  # TLS, client certificate optional, alice mapped
H = free_port()  # plain HTTP
BACKEND = free_port()

FIELDS = """  [sites.log]
  fields = ["cs-method", "cs-uri-stem", "cs-uri-query", "cs-username", "sc-status", "cs-version",
            "cs-host", "cs(Cookie)", "cs(User-Agent)", "cs(Referer)", "cs(Authorization)",
            "cs(X-Tag)", "x(AUTH_TYPE)", "sc(ETag)", "sc-bytes"]
"""

SITES = f"""
[[sites]]
name = "Tls"
id = 1
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert"]
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
  [[sites.locations]]
  path = "/echo"
  backend = "http://127.0.0.1:{BACKEND}"
{FIELDS}
[[sites]]
name = "Plain"
id = 2
root = "www"
ssl_flags = []
  [[sites.bindings]]
  listen = "127.0.0.1:{H}"
  protocol = "http"
  [[sites.locations]]
  path = "/echo"
  backend = "http://127.0.0.1:{BACKEND}"
{FIELDS}
"""

LIMITS = """
max_headers = 20
max_header_bytes = 8192
max_body_bytes = 1000
header_timeout_ms = 3000
"""

# Ten header fields with secrets: what a later request on the loop must never be seen with.
SECRETS = {
    "Cookie": "session=SECRET-COOKIE",
    "Authorization": "Bearer SECRET-TOKEN",
    "Referer": "https://secret.example/",
    "User-Agent": "secret-agent",
    "X-Tag": "secret-tag",
    "X-A": "1", "X-B": "2", "X-C": "3", "X-D": "4", "X-E": "5",
}

BIG = 200_000  # beyond the file cache (64 KiB): sent in slices
MID = 30_000   # cached, larger than a TLS record and the write scratch

server = None
backend = None


class EchoBackend(ConnectionServer):
    """Answers every request with the request line and headers it received, as JSON."""

    def serve(self, c):
        f = c.makefile("rb")
        try:
            while True:
                line, headers, _ = read_request(f)
                if line is None:
                    return
                c.sendall(answer(json.dumps({"line": line, "headers": headers}).encode()))
        except OSError:
            return


def setUpModule():
    global server, backend
    backend = EchoBackend(BACKEND)
    backend.start()
    # One loop: every connection takes its exchange from, and leaves it to, the same spares.
    server = Server(SITES, server_extra=LIMITS, threads=1)
    with open(os.path.join(server.dir, "www", "big.bin"), "wb") as f:
        f.write(b"B" * BIG)
    with open(os.path.join(server.dir, "www", "mid.bin"), "wb") as f:
        f.write(b"M" * MID)
    server.start()


def tearDownModule():
    backend.stop()
    assert server.stop() == 0


def raw(method, target, version="1.1", headers=None, host="localhost"):
    lines = [f"{method} {target} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def tls_conn(user=None):
    return Connection(P, user=user)


def plain_conn():
    return Connection(H, tls=False)


TRANSPORTS = {"tls": (tls_conn, 1), "plain": (plain_conn, 2)}


def entry(query, site):
    return server.log_entry(query, site_id=site, timeout=5.0)


NOTHING_OF_A = {"cs(Cookie)": "-", "cs(Authorization)": "-", "cs(Referer)": "-", "cs(User-Agent)": "-",
                "cs(X-Tag)": "-", "cs-username": "-"}


class Leaks(unittest.TestCase):
    def test_fewer_headers_on_another_connection_see_none_of_the_last(self):
        for name, (connect, site) in TRANSPORTS.items():
            with self.subTest(name):
                a = tls_conn("alice") if name == "tls" else connect()
                b = connect()
                try:
                    r = a.request(f"/data.txt?{name}-a1", headers=SECRETS)
                    self.assertEqual(r.body, b"0123456789")
                    # HTTP/1.0 keep-alive with no header at all, then HTTP/1.1 with Host alone.
                    b.sock.sendall(raw("GET", f"/data.txt?{name}-b1", "1.0", {"Connection": "keep-alive"}, host=None))
                    r = read_response(b.file)
                    self.assertEqual((r.status, r.body, r.headers.get("connection")), (200, b"0123456789", "keep-alive"))
                    r = b.request(f"/data.txt?{name}-b2")
                    self.assertEqual(r.body, b"0123456789")
                    # What the backend is told: nothing of a's request, nor its user.
                    a.request(f"/echo?{name}-a2", headers=SECRETS)
                    echoed = json.loads(b.request(f"/echo?{name}-b3").body)
                    for h in ("cookie", "authorization", "referer", "user-agent", "x-tag", "x-a", "x-e"):
                        self.assertNotIn(h, echoed["headers"])
                    self.assertNotIn("azureuser", json.dumps(echoed))
                    self.assertEqual(echoed["line"], f"GET /echo?{name}-b3 HTTP/1.1")
                finally:
                    a.close()
                    b.close()
                self.assertEqual(entry(f"{name}-a1", site)["cs(Cookie)"], "session=SECRET-COOKIE")
                if name == "tls":
                    self.assertEqual(entry("tls-a1", site)["cs-username"], "azureuser")
                for q in ("b1", "b2", "b3"):
                    e = entry(f"{name}-{q}", site)
                    for field, want in NOTHING_OF_A.items():
                        self.assertEqual(e[field], want, f"{q} {field}")
                self.assertEqual(entry(f"{name}-b1", site)["cs-host"], "-")
                self.assertEqual(entry(f"{name}-b1", site)["cs-version"], "HTTP/1.0")

    def test_an_error_after_a_good_request_logs_nothing_of_it(self):
        for name, (connect, site) in TRANSPORTS.items():
            with self.subTest(name):
                # 400: a head the parser refuses, on the connection that just served a user.
                c = tls_conn("alice") if name == "tls" else connect()
                c.request(f"/data.txt?{name}-e1", headers=SECRETS)
                c.sock.sendall(b"GET /data.txt?" + name.encode() + b"-e2 HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n")
                self.assertEqual(read_response(c.file).status, 400)
                c.close()
                # 431: too many fields, after a request with many.
                c = connect()
                c.request(f"/data.txt?{name}-e3", headers=SECRETS)
                c.sock.sendall(raw("GET", f"/data.txt?{name}-e4", headers={f"X-{i}": "v" for i in range(30)}))
                self.assertEqual(read_response(c.file).status, 431)
                c.close()
                # 413: a body announced larger than max_body_bytes.
                c = connect()
                c.request(f"/data.txt?{name}-e5", headers=SECRETS)
                c.sock.sendall(raw("POST", f"/data.txt?{name}-e6", headers={"Content-Length": "5000"}))
                self.assertEqual(read_response(c.file).status, 413)
                c.close()
                entry(f"{name}-e5", site)  # the lines are on disk
                deadline = time.time() + 5
                while True:
                    lines = server.log_lines(site)
                    # Refused before the head was understood (Beast rejects the Content-Length
                    # at parse time): logged with no method, target or header of anyone's.
                    unparsed = {s: [l for l in lines if l.startswith(f"- - - - {s} ")] for s in ("400", "413")}
                    if all(unparsed.values()) or time.time() > deadline:
                        break
                    time.sleep(0.1)
                for status, found in unparsed.items():
                    self.assertTrue(found, f"no {status} line: {lines}")
                    for l in found:
                        self.assertNotIn("SECRET", l)
                        self.assertNotIn("azureuser", l)
                        self.assertNotIn("localhost", l)
                e = entry(f"{name}-e4", site)
                self.assertEqual((e["cs-method"], e["sc-status"], e["cs-host"]), ("GET", "431", "localhost"))
                for field, want in NOTHING_OF_A.items():
                    self.assertEqual(e[field], want, f"e4 {field}")

    def test_interleaved_connections_each_line_is_its_own_request(self):
        """Many connections taking turns on one loop, each request with its own random subset of
        header fields (values naming the request): every answer and W3C line is that request's."""
        rng = random.Random(19)
        for name, (connect, site) in TRANSPORTS.items():
            with self.subTest(name):
                conns = [connect() for _ in range(12)]
                sent = {}
                try:
                    for round_ in range(8):
                        for i, c in enumerate(conns):
                            q = f"{name}-r{round_}c{i}"
                            fields = {k: f"{k.lower()}-{q}" for k in ("Cookie", "Referer", "User-Agent", "X-Tag", "Authorization")
                                      if rng.random() < 0.5}
                            fields.update({f"X-Pad{j}": "p" * rng.randrange(1, 200) for j in range(rng.randrange(0, 12))})
                            version = rng.choice(("1.0", "1.1"))
                            if version == "1.0":
                                fields["Connection"] = "keep-alive"
                            target = rng.choice(("/data.txt", "/mid.bin", "/"))
                            method = rng.choice(("GET", "GET", "HEAD"))
                            c.sock.sendall(raw(method, f"{target}?{q}", version, fields, host="localhost" if version == "1.1" or rng.random() < 0.5 else None))
                            r = read_response(c.file, head=method == "HEAD")
                            self.assertEqual(r.status, 200, q)
                            want = {"/data.txt": 10, "/mid.bin": MID, "/": len(b"<h1>hello from /</h1>\n")}[target]
                            self.assertEqual(int(r.headers["content-length"]), want, q)
                            if method == "GET":
                                self.assertEqual(len(r.body), want, q)
                            sent[q] = (method, target, fields)
                finally:
                    for c in conns:
                        c.close()
                for q, (method, target, fields) in sent.items():
                    e = entry(q, site)
                    self.assertEqual((e["cs-method"], e["cs-uri-stem"]), (method, target), q)
                    for k in ("Cookie", "Referer", "User-Agent", "X-Tag", "Authorization"):
                        self.assertEqual(e[f"cs({k})"], fields.get(k, "-"), f"{q} {k}")


class Framing(unittest.TestCase):
    def test_large_small_head_304_416_on_one_connection(self):
        for name, (connect, _) in TRANSPORTS.items():
            for version in ("1.1", "1.0"):
                with self.subTest(f"{name} HTTP/{version}"):
                    c = connect()
                    ka = {"Connection": "keep-alive"} if version == "1.0" else {}

                    def ask(target, method="GET", extra=None):
                        c.sock.sendall(raw(method, target, version, dict(ka, **(extra or {}))))
                        return read_response(c.file, head=method == "HEAD")
                    try:
                        r = ask("/big.bin")
                        self.assertEqual((r.status, len(r.body)), (200, BIG))
                        r = ask("/data.txt")
                        self.assertEqual((r.status, r.body), (200, b"0123456789"))
                        r = ask("/mid.bin")
                        self.assertEqual((r.status, r.body), (200, b"M" * MID))
                        r = ask("/mid.bin", "HEAD")
                        self.assertEqual((r.status, r.headers["content-length"]), (200, str(MID)))
                        r = ask("/data.txt")
                        etag = r.headers["etag"]
                        self.assertEqual(r.body, b"0123456789")
                        r = ask("/data.txt", extra={"If-None-Match": etag})
                        self.assertEqual((r.status, r.body), (304, b""))
                        self.assertNotIn("content-length", r.headers)
                        r = ask("/data.txt", extra={"Range": "bytes=100-"})
                        self.assertEqual(r.status, 416)
                        self.assertEqual(len(r.body), int(r.headers["content-length"]))
                        r = ask("/data.txt", extra={"Range": "bytes=2-4"})
                        self.assertEqual((r.status, r.body), (206, b"234"))
                        r = ask("/data.txt")
                        self.assertEqual((r.status, r.body), (200, b"0123456789"))
                    finally:
                        c.close()

    def test_pipelined_requests_are_all_answered_in_order(self):
        """Over TLS each request in its own record, sent at once: after the first, the next ones
        are already inside OpenSSL (read ahead) while the socket is empty; the idle wait must see
        them. Then all in one record, then one byte per record, a head split across records."""
        for name, (connect, _) in TRANSPORTS.items():
            with self.subTest(name):
                c = connect()
                c.sock.settimeout(5)
                try:
                    for i in range(40):
                        c.sock.sendall(raw("GET", f"/data.txt?{name}-p{i}", headers={"X-Tag": f"p{i}"}))
                    for i in range(40):
                        r = read_response(c.file)
                        self.assertEqual((r.status, r.body), (200, b"0123456789"), i)
                    c.sock.sendall(b"".join(raw("HEAD" if i % 3 == 0 else "GET", f"/mid.bin?{name}-q{i}") for i in range(10)))
                    for i in range(10):
                        r = read_response(c.file, head=i % 3 == 0)
                        self.assertEqual((r.status, len(r.body)), (200, 0 if i % 3 == 0 else MID), i)
                    for byte in raw("GET", f"/data.txt?{name}-t1", headers={"X-Tag": "trickled"}):
                        c.sock.sendall(bytes([byte]))
                    self.assertEqual(read_response(c.file).body, b"0123456789")
                    two = raw("GET", f"/data.txt?{name}-s1") + raw("GET", f"/?{name}-s2")
                    cut = len(raw("GET", f"/data.txt?{name}-s1")) - 2
                    for part in (two[:cut], two[cut:cut + 7], two[cut + 7:]):
                        c.sock.sendall(part)
                        time.sleep(0.05)
                    self.assertEqual(read_response(c.file).body, b"0123456789")
                    self.assertEqual(read_response(c.file).body, b"<h1>hello from /</h1>\n")
                finally:
                    c.close()
                site = TRANSPORTS[name][1]
                self.assertEqual(entry(f"{name}-p39", site)["cs(X-Tag)"], "p39")
                self.assertEqual(entry(f"{name}-t1", site)["cs(X-Tag)"], "trickled")
                self.assertEqual(entry(f"{name}-s2", site)["cs(X-Tag)"], "-")

    def test_half_close_still_gets_its_answer(self):
        for name, (connect, _) in TRANSPORTS.items():
            with self.subTest(name):
                c = connect()
                try:
                    c.sock.sendall(raw("GET", f"/data.txt?{name}-hc"))
                    # Half-close the TCP connection under TLS too (no close_notify).
                    with socket.socket(fileno=os.dup(c.sock.fileno())) as s:
                        s.shutdown(socket.SHUT_WR)
                    r = read_response(c.file)
                    self.assertEqual((r.status, r.body), (200, b"0123456789"))
                finally:
                    c.close()


class SlowReader(unittest.TestCase):
    """A file too large for the cache goes out in slices after the head. Over TLS the head is
    written at once; the slices must still be under body_timeout_ms, as over plain HTTP: a
    client that stops reading is cut, not kept (with its open file and a slice) for as long as
    TCP lasts. The file read on the pool disarms the connection, so nothing else would bound it."""

    HUGE = 16 << 20

    @classmethod
    def setUpClass(cls):
        cls.tls_port, cls.plain_port = free_port(), free_port()
        sites = f"""
[[sites]]
name = "Tls"
id = 1
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{cls.tls_port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
[[sites]]
name = "Plain"
id = 2
root = "www"
ssl_flags = []
  [[sites.bindings]]
  listen = "127.0.0.1:{cls.plain_port}"
  protocol = "http"
"""
        cls.server = Server(sites, server_extra="body_timeout_ms = 500", threads=1)
        with open(os.path.join(cls.server.dir, "www", "huge.bin"), "wb") as f:
            f.write(b"H" * cls.HUGE)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def test_a_client_that_stops_reading_a_large_file_is_cut_at_body_timeout(self):
        for name, port in (("tls", self.tls_port), ("plain", self.plain_port)):
            with self.subTest(name):
                raw_sock = socket.socket()
                # A small window: what the client does not read stays in the server's socket.
                raw_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                raw_sock.settimeout(10)
                raw_sock.connect(("127.0.0.1", port))
                sock = client_context().wrap_socket(raw_sock, server_hostname="localhost") if name == "tls" else raw_sock
                try:
                    sock.sendall(raw("GET", "/huge.bin"))
                    time.sleep(0.9)  # past body_timeout_ms (500) with the server's write waiting
                    got = 0
                    try:
                        while got < self.HUGE:
                            d = sock.recv(65536)
                            if not d:
                                break
                            got += len(d)
                    except (ssl.SSLError, ConnectionError):
                        pass
                    self.assertLess(got, self.HUGE, "the whole file went out to a client that stopped reading")
                finally:
                    sock.close()


if __name__ == "__main__":
    unittest.main()
