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
                      SETTINGS, WINDOW_UPDATE, Client, frame, goaway_code, literal, request_block)

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
    for user in ("carl", "dave", "erin", "fred"):
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


class ReloadWhileProxying(unittest.TestCase):
    """Streams still opened after a reload's GOAWAY (it waits behind a write the client does not
    take) are decided under the newest configuration; a proxied stream decided under an older
    one keeps using that one's site and backend until it ends. Two reloads in a row must not
    free the configuration a stream in flight still reads (run against an ASan build to see it)."""

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

            c = Client(q)
            # Windows wide open, then a huge file the client does not read: the server's
            # writes stall, and what it queues (the reloads' GOAWAY) stays queued.
            c.send(frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") + (2**31 - 1).to_bytes(4, "big")) +
                   frame(WINDOW_UPDATE, 0, 0, (2**31 - 1 - 65535).to_bytes(4, "big")))
            c.get(1, "/huge.bin?stall")
            time.sleep(0.5)
            reload(1)
            c.get(3, "/slow?in-flight")  # the backend answers in 3 s
            time.sleep(0.3)
            reload(2)
            c.get(5, "/?after-second-reload")
            frames = c.frames_until(lambda f: f is None or (f[2] == 3 and f[1] & END_STREAM))
            self.assertIsNotNone(frames[-1], "the connection ended before the proxied stream was answered: " +
                                 srv.stderr_text()[-3000:])
            self.assertEqual(json.loads(body_of(frames, 3)), {"slow": True})
            c.close()
            self.assertEqual(srv.log_entry("in-flight")["sc-status"], "200")
            # The stream after the second reload was decided (under the newest generation).
            self.assertEqual(srv.log_entry("after-second-reload")["sc-status"], "200")
        finally:
            said = srv.stderr_text()[-3000:]
            self.assertEqual(srv.stop(), 0, said)


if __name__ == "__main__":
    unittest.main(verbosity=2)
