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
AUTH = "Basic " + base64.b64encode(b"carl:carl-pw").decode()


def setUpModule():
    global server, backend
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"), str(BACKEND), SOCK],
                               stdout=subprocess.PIPE, text=True)
    assert backend.stdout.readline().strip() == "ready"
    server = Server(SITES)
    r = subprocess.run([CERTGATE, "users", "add", "-f", os.path.join(server.dir, "users.txt"), "carl", "--password-stdin"],
                       input="carl-pw\n", capture_output=True, text=True)
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


def post(c, sid, path, body, length=True, extra=b""):
    """HEADERS (Basic credentials: the password check is a need met off the loop) and the body's
    DATA in one write, as curl sends them."""
    head = request_block(path, method="POST", extra=literal("authorization", AUTH) + extra +
                         (literal("content-length", str(len(body))) if length else b""))
    c.send(frame(HEADERS, END_HEADERS, sid, head) + frame(DATA, END_STREAM, sid, body))
    return until_end(c, sid)


class BodyWhileDeciding(unittest.TestCase):
    """A proxied stream's body may arrive while its decision still waits (here: the password
    check on its pool). It must reach the backend, not be dropped as a body nobody reads."""

    def check(self, length):
        q = f"early-body-{length}"
        c = Client(P)  # no certificate: Basic decides
        frames = post(c, 1, f"/app/up?{q}", b"0123456789" * 100, length=length)
        c.close()
        got = json.loads(body_of(frames, 1))
        self.assertEqual((got["method"], got["body_bytes"]), ("POST", 1000))
        entry = server.log_entry(q)
        self.assertEqual((entry["sc-status"], entry["cs-username"], entry["cs-version"]), ("200", "carl", "HTTP/2"))

    def test_body_with_content_length(self):
        self.check(True)

    def test_body_without_content_length(self):
        self.check(False)


if __name__ == "__main__":
    unittest.main(verbosity=2)
