"""A hostile pass over HTTP/2 (docs/security.md "HTTP/2: a hostile pass"): raw frames
(tests/e2e/h2frames.py) against the real binary for what the first attack tests did not cover —
:authority / Host / SNI disagreement, malformed and connection-specific fields refused per RFC
9113 §8.2, smuggling toward the HTTP/1.1 backend, request bodies that arrive while a decision
waits, and a reload while proxied streams are in flight."""
import base64
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import CERTGATE, Server, free_port  # noqa: E402
from h2frames import (DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PROTOCOL_ERROR, RST_STREAM,  # noqa: E402
                      SETTINGS, WINDOW_UPDATE, Client, frame, goaway_code, goaway_last_stream, literal,
                      request_block)

P = free_port()
BACKEND = free_port()
SOCK = os.path.join("/tmp", f"certgate-redh2-backend-{BACKEND}.sock")

SITES = f"""
[[sites]]
name = "Strict"
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
  [sites.basic]
  enabled = true
  users_file = "users.txt"
  realm = "certgate test"
  [[sites.locations]]
  path = "/app"
  ssl_flags = ["Ssl", "SslNegotiateCert"]
  anonymous = false
  backend = "http://127.0.0.1:{BACKEND}"
  [sites.log]
  fields = ["date", "time", "cs-method", "cs-uri-stem", "cs-uri-query", "cs-username", "sc-status",
            "sc-substatus", "cs-version", "cs-host"]

[[sites]]
name = "Open"
id = 2
root = "www/public"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  host = "site-b.test"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.log]
  fields = ["date", "time", "cs-method", "cs-uri-stem", "cs-uri-query", "sc-status", "sc-substatus", "cs-version"]
"""

server = None
backend = None
def basic(user):
    return "Basic " + base64.b64encode(f"{user}:{user}-pw".encode()).decode()


def setUpModule():
    global server, backend
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"), str(BACKEND), SOCK],
                               stdout=subprocess.PIPE, text=True)
    assert backend.stdout.readline().strip() == "ready"
    server = Server(SITES)
    for user in ("carl", "dave", "erin", "fred", "gina"):
        r = subprocess.run([CERTGATE, "users", "add", "-f", os.path.join(server.dir, "users.txt"), user,
                            "--password-stdin"], input=f"{user}-pw\n", capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    server.start()


def tearDownModule():
    assert server.stop() == 0
    backend.kill()
    backend.wait()


def until_end(c, stream):
    """Frames up to the end of `stream` (END_STREAM or RST_STREAM), a GOAWAY, or the close."""
    return c.frames_until(lambda f: f is None or f[0] == GOAWAY or
                          (f[2] == stream and (f[0] == RST_STREAM or f[1] & END_STREAM)))


def body_of(frames, stream):
    return b"".join(f[3] for f in frames if f and f[0] == DATA and f[2] == stream)


def rst_code(frames, stream):
    for f in frames:
        if f and f[0] == RST_STREAM and f[2] == stream:
            return int.from_bytes(f[3], "big")
    return None


def post(c, sid, path, body, user, length=True, extra=b""):
    """HEADERS (Basic credentials: the password check is a need met off the loop) and the body's
    DATA in one write, as curl sends them."""
    head = request_block(path, method="POST", extra=literal("authorization", basic(user)) + extra +
                         (literal("content-length", str(len(body))) if length else b""))
    c.send(frame(HEADERS, END_HEADERS, sid, head) + frame(DATA, END_STREAM, sid, body))
    return until_end(c, sid)


def answer_of(query, site_id=1):
    e = server.log_entry(query, site_id)
    return e["sc-status"], e["sc-substatus"]


class Coalescing(unittest.TestCase):
    """A stream decided by the site its connection's SNI chose, whatever :authority or Host
    say: a name of another site on this address, in any spelling, is 421; a disagreement
    between :authority and Host is 400."""

    def one(self, q, block, sni="localhost", user="alice"):
        c = Client(P, user=user, sni=sni)
        c.headers(1, block)
        frames = until_end(c, 1)
        c.close()
        self.assertTrue(frames[-1] and frames[-1][1] & END_STREAM, frames[-1])
        return answer_of(q, 2 if sni == "site-b.test" else 1)

    def test_other_sites_name_in_any_spelling_is_421(self):
        for i, a in enumerate(["site-b.test", "SITE-B.TEST", "site-b.test.", f"site-b.test:{P}", "site-b.test:443"]):
            with self.subTest(authority=a):
                self.assertEqual(self.one(f"co{i}", request_block(f"/?co{i}", authority=a)), ("421", "0"))

    def test_host_naming_another_site_without_authority_is_421(self):
        block = (literal(":method", "GET") + literal(":scheme", "https") + literal(":path", "/?co-host") +
                 literal("host", "site-b.test"))
        self.assertEqual(self.one("co-host", block), ("421", "0"))

    def test_authority_and_host_disagreeing_is_400(self):
        self.assertEqual(self.one("co-dis", request_block("/?co-dis", extra=literal("host", "site-b.test"))), ("400", "0"))
        self.assertEqual(self.one("co-dis2", request_block("/?co-dis2", authority="site-b.test",
                                                           extra=literal("host", "localhost"))), ("400", "0"))

    def test_open_sites_connection_cannot_reach_the_strict_site(self):
        # No certificate, SNI of the open site: the strict site's name is 421 there.
        for i, a in enumerate(["localhost", "LOCALHOST", "localhost."]):
            with self.subTest(authority=a):
                self.assertEqual(self.one(f"co-open{i}", request_block(f"/?co-open{i}", authority=a), sni="site-b.test",
                                          user=None), ("421", "0"))


class Malformed(unittest.TestCase):
    """RFC 9113 §8.2-8.3: malformed requests are stream errors (RST_STREAM PROTOCOL_ERROR),
    decided by no one and forwarded nowhere (no W3C line, the backend never sees them)."""

    def refused(self, block):
        c = Client(P, user="alice")
        c.headers(1, block)
        frames = until_end(c, 1)
        # The connection lives on: the next stream is answered.
        c.get(3, "/?malformed-next")
        after = until_end(c, 3)
        c.close()
        self.assertEqual(rst_code(frames, 1), PROTOCOL_ERROR, frames)
        self.assertTrue(after[-1] and after[-1][1] & END_STREAM)

    def test_connection_specific_and_bad_fields(self):
        for n, v in [("Upper", "x"), ("connection", "close"), ("te", "gzip"), ("transfer-encoding", "chunked"),
                     ("upgrade", "h2c"), ("keep-alive", "1"), ("proxy-connection", "x"), ("x-a", "a\r\nx-b: 1"),
                     ("x-a", "a\nb"), ("x-a", "a\x00b"), ("x-a", " lead"), ("x-a b", "1"), ("content-length", "abc"),
                     ("content-length", "1, 1"), ("host", "localhost\r\nx: y")]:
            with self.subTest(name=n, value=v):
                self.refused(request_block("/app/x?bad", extra=literal(n, v)))
        self.assertEqual(answer_of("malformed-next"), ("200", "0"))
        self.assertEqual([l for l in server.log_lines(1) if " bad " in l], [])

    def test_connect_is_no_tunnel(self):
        # Plain CONNECT is well-formed HTTP/2 (only :method and :authority); certgate tunnels
        # nothing: it is refused by the ordinary decision, and no backend is dialled.
        c = Client(P, user="alice")
        c.headers(1, literal(":method", "CONNECT") + literal(":authority", f"127.0.0.1:{BACKEND}"))
        frames = until_end(c, 1)
        c.close()
        self.assertTrue(frames[-1] and frames[-1][1] & END_STREAM, frames)
        deadline = time.time() + 3
        while not (lines := [l for l in server.log_lines(1) if " CONNECT " in l]) and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(len(lines), 1, server.log_lines(1)[-5:])
        self.assertNotIn(" 200 ", lines[0])

    def test_pseudo_header_abuse(self):
        m, sc, a = literal(":method", "GET"), literal(":scheme", "https"), literal(":authority", "localhost")
        for name, block in [
            ("absolute :path", m + sc + literal(":path", "https://site-b.test/") + a),
            (":path without slash", m + sc + literal(":path", "index.html") + a),
            ("empty :path", m + sc + literal(":path", "") + a),
            ("* for GET", m + sc + literal(":path", "*") + a),
            ("no :method", sc + literal(":path", "/") + a),
            ("two :path", m + sc + literal(":path", "/") + literal(":path", "/app/x") + a),
            ("pseudo after a field", m + sc + literal("x-a", "1") + literal(":path", "/") + a),
            ("unknown pseudo", m + sc + literal(":path", "/") + a + literal(":foo", "bar")),
            ("extended CONNECT (not offered)", literal(":method", "CONNECT") + sc + literal(":path", "/app/x") + a +
             literal(":protocol", "websocket")),
            ("two Host", m + sc + literal(":path", "/") + a + literal("host", "localhost") + literal("host", "site-b.test")),
        ]:
            with self.subTest(name):
                self.refused(block)

    def test_pseudo_header_in_trailers_resets_a_proxied_upload(self):
        c = Client(P)
        c.headers(1, request_block("/app/t?trailer", method="POST", extra=literal("authorization", basic("fred"))),
                  end_stream=False)
        c.send(frame(DATA, 0, 1, b"abc") + frame(HEADERS, END_HEADERS | END_STREAM, 1, literal(":path", "/evil")))
        frames = until_end(c, 1)
        c.close()
        self.assertEqual(rst_code(frames, 1), PROTOCOL_ERROR, frames)

    def test_content_length_disagreeing_with_data_never_reaches_the_backend_whole(self):
        for i, (announced, sent) in enumerate([(3, b"0123456789"), (10, b"012")]):
            with self.subTest(announced=announced, sent=len(sent)):
                c = Client(P)
                head = request_block(f"/app/cl?cl{i}", method="POST", extra=literal("authorization", basic("fred")) +
                                     literal("content-length", str(announced)))
                c.send(frame(HEADERS, END_HEADERS, 1, head) + frame(DATA, END_STREAM, 1, sent))
                frames = until_end(c, 1)
                c.close()
                self.assertEqual(rst_code(frames, 1), PROTOCOL_ERROR, frames)
                self.assertEqual(body_of(frames, 1), b"")

    def test_window_update_overflow_is_a_flow_control_error(self):
        c = Client(P, user="alice")
        c.send(frame(WINDOW_UPDATE, 0, 0, (2**31 - 1).to_bytes(4, "big")))
        frames = c.frames_until(lambda f: f is None or f[0] == GOAWAY)
        c.close()
        self.assertIsNotNone(frames[-1])
        self.assertEqual(goaway_code(frames[-1][3]), 3)  # FLOW_CONTROL_ERROR


class BodyWhileDeciding(unittest.TestCase):
    """A proxied stream's body may arrive while its decision still waits (here: the password
    check on its pool). It must reach the backend, not be dropped as a body nobody reads."""

    def check(self, user, length):
        # A user whose password this server has not checked yet: the check waits on its pool.
        q = f"early-body-{length}"
        c = Client(P)  # no certificate: Basic decides
        body = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n" * 25
        frames = post(c, 1, f"/app/up?{q}", body, user, length=length)
        got = json.loads(body_of(frames, 1))
        self.assertEqual((got["method"], got["body_bytes"]), ("POST", len(body)))
        # The backend connection goes back to the pool clean: the next stream gets its own answer.
        c.get(3, f"/app/next?{q}-next", extra=literal("authorization", basic(user)))
        got = json.loads(body_of(until_end(c, 3), 3))
        self.assertEqual((got["method"], got["path"]), ("GET", f"/app/next?{q}-next"))
        c.close()
        entry = server.log_entry(q)
        self.assertEqual((entry["sc-status"], entry["cs-username"], entry["cs-version"]), ("200", user, "HTTP/2"))

    def test_body_with_content_length(self):
        self.check("dave", True)

    def test_body_without_content_length(self):
        self.check("erin", False)


class NeedOutlivesItsStream(unittest.TestCase):
    """A decision that waits off the loop (here a password check on its pool) and completes
    after its stream was reset, or after the connection closed, finds nothing to answer: no
    crash (the ASan build runs this too), no answer, and the server goes on serving."""

    def test_reset_while_the_password_check_waits(self):
        c = Client(P)
        c.get(1, "/app/x?need-reset", extra=literal("authorization", basic("carl")))
        c.send(frame(RST_STREAM, 0, 1, (8).to_bytes(4, "big")))  # CANCEL
        c.get(3, "/?need-reset-next", authority="localhost")
        frames = c.frames_until(lambda f: f is None or (f[2] == 3 and f[1] & END_STREAM))
        c.close()
        self.assertIsNotNone(frames[-1])
        self.assertFalse(any(f and f[2] == 1 and f[0] in (HEADERS, DATA) for f in frames))

    def test_connection_closed_while_the_password_check_waits(self):
        c = Client(P)
        c.get(1, "/app/x?need-closed", extra=literal("authorization", basic("gina")))
        c.close()
        # The same user's check, remembered or not, still answers on a new connection.
        c = Client(P)
        c.get(1, "/app/x?need-closed-next", extra=literal("authorization", basic("gina")))
        frames = until_end(c, 1)
        c.close()
        self.assertEqual(json.loads(body_of(frames, 1))["path"], "/app/x?need-closed-next")


class ReloadWhileProxying(unittest.TestCase):
    """A reload's GOAWAY can wait behind a write the client does not take; streams the client
    opens meanwhile are past its last stream id, so they are refused, not decided (the client
    may retry them: a POST must not reach the backend twice). Before, each was decided and moved
    the connection to the newest configuration, freeing the one a proxied stream in flight still
    read (a heap-use-after-free under ASan)."""

    def test_two_reloads_while_a_proxied_stream_waits(self):
        q = free_port()
        srv = Server(f"""
[[sites]]
name = "R"
id = 1
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{q}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [[sites.locations]]
  path = "/slow"
  backend = "http://127.0.0.1:{BACKEND}"
  [sites.log]
  fields = ["date", "time", "cs-method", "cs-uri-stem", "cs-uri-query", "sc-status", "sc-substatus", "cs-version"]
""")
        with open(os.path.join(srv.dir, "www", "huge.bin"), "wb") as f:
            f.write(b"h" * (48 << 20))
        srv.start()
        try:
            def reload(n):
                srv.proc.send_signal(signal.SIGHUP)
                deadline = time.time() + 10
                while srv.stderr_text().count("reloaded") < n and time.time() < deadline:
                    time.sleep(0.05)
                self.assertEqual(srv.stderr_text().count("reloaded"), n, srv.stderr_text())

            def send_queue():
                out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{q} )"],
                                     capture_output=True, text=True).stdout.split()
                return int(out[1]) if out else 0

            c = Client(q, rcvbuf=65536)
            # Windows wide open, then a huge file the client does not read: the server's
            # writes stall, and what it queues (the reloads' GOAWAY) stays queued.
            c.send(frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") + (2**31 - 1).to_bytes(4, "big")) +
                   frame(WINDOW_UPDATE, 0, 0, (2**31 - 1 - 65535).to_bytes(4, "big")))
            c.get(1, "/huge.bin?stall")
            # Stalled: the server's send queue is full and no longer moves.
            deadline, last = time.time() + 20, -1
            while time.time() < deadline:
                time.sleep(0.2)
                now = send_queue()
                if now > 0 and now == last:
                    break
                last = now
            self.assertTrue(now > 0 and now == last, "the server's writes never stalled")
            reload(1)
            c.get(3, "/slow?in-flight")  # the backend answers in 3 s
            time.sleep(0.3)
            reload(2)
            c.get(5, "/?after-second-reload")
            frames = c.frames_until(lambda f: f is None or (f[2] == 3 and f[1] & END_STREAM))
            self.assertIsNotNone(frames[-1], "the connection ended before the proxied stream was answered")
            self.assertEqual(json.loads(body_of(frames, 3)), {"slow": True})
            goaway = [f for f in frames if f and f[0] == GOAWAY]
            self.assertEqual(goaway_last_stream(goaway[0][3]), 3)
            c.close()
            self.assertEqual(srv.log_entry("in-flight")["sc-status"], "200")
            # The stream opened after the GOAWAY (last stream 3) was queued is refused, not decided:
            # the client may retry it on a new connection.
            self.assertEqual([l for l in srv.log_lines() if "after-second-reload" in l], [])
            self.assertFalse(any(f and f[2] == 5 and f[0] in (HEADERS, DATA) for f in frames))
        finally:
            said = srv.stderr_text()[-3000:]
            self.assertEqual(srv.stop(), 0, said)


if __name__ == "__main__":
    unittest.main(verbosity=2)
