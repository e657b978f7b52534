"""Hostile-review findings on the HTTP layer, on the real binary over real sockets: what a
backend's interim (1xx) answers, or answers certgate cannot tell the end of, must not leave a
pooled backend connection holding another request's answer (one user's response delivered to
another); a 101 opens a tunnel only after a real WebSocket handshake; the signed assertion
states how this request was authenticated, not how an earlier request of the same connection
was; the W3C log names the path the policy was decided on."""
import base64
import json
import os
import socket
import subprocess
import tempfile
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import CERTGATE, Connection, Server, free_port, read_response  # noqa: E402
from listeners import ConnectionServer, answer, read_request  # noqa: E402

P = free_port()
P_ID = free_port()
P_NOMAP = free_port()
BACKEND = free_port()
TMP = tempfile.mkdtemp(prefix="certgate-redhttp-")
KEY = os.path.join(TMP, "assertion.key")


class HostileBackend(ConnectionServer):
    """A keep-alive backend that answers each request by its path: `/hints` with a 103 Early
    Hints before the final answer, `/switch` with a 101 nobody asked for, `/eof` with a body
    that ends at the close, `/extra` with a second answer nobody asked for, anything else with
    its own path (so a desynchronised connection shows as another path's body)."""

    def serve(self, c):
        f = c.makefile("rb")
        try:
            while True:
                line, headers, _ = read_request(f)
                if line is None:
                    return
                path = line.split(" ")[1]
                if path.startswith("/hints"):
                    c.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
                    time.sleep(0.3)
                    c.sendall(answer(b"final answer of " + path.encode()))
                elif path.startswith("/flood"):
                    c.sendall(b"HTTP/1.1 102 Processing\r\n\r\n" * 1000)
                    c.sendall(answer(b"final answer of " + path.encode()))
                elif path.startswith("/switch"):
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n")
                    time.sleep(0.3)
                    c.sendall(answer(b"tunnel bytes of " + path.encode()))
                elif path.startswith("/eof"):
                    c.sendall(b"HTTP/1.1 200 OK\r\n\r\nbody up to the close")
                    c.shutdown(socket.SHUT_WR)
                    return
                elif path.startswith("/extra"):
                    c.sendall(answer(b"first of " + path.encode()) + answer(b"smuggled answer"))
                elif path.startswith("/ws-relayed"):
                    # An application that answers with a status it was given: 101, no handshake.
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                elif path.startswith("/huge"):
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (64 << 20))
                    block = b"x" * (1 << 20)
                    for _ in range(64):
                        c.sendall(block)
                elif path.startswith("/whoami"):
                    c.sendall(answer(("user=" + headers.get("x-remote-user", "-")).encode()))
                elif path.startswith("/certificate"):
                    c.sendall(answer(("cert=" + headers.get("x-arr-clientcert", "-")[:10]).encode()))
                elif path.endswith("/claims"):
                    token = headers.get("x-certgate-assertion", "")
                    payload = token.split(".")[1] if token.count(".") == 2 else ""
                    c.sendall(answer(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
                else:
                    c.sendall(answer(path.encode()))
        except OSError:
            return
        finally:
            c.close()



SITES = f"""
[[sites]]
name = "Proxy"
id = 1
root = "www"
ssl_flags = ["Ssl"]
backend = "http://127.0.0.1:{BACKEND}"
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.proxy]
  read_timeout_ms = 2000

[[sites]]
name = "Identity"
id = 2
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
backend = "http://127.0.0.1:{BACKEND}"
  [[sites.bindings]]
  listen = "127.0.0.1:{P_ID}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  [sites.mapping]
  [[sites.mapping.one_to_one]]
  user = "alice"
  certificate = "@PKI@/alice.pem"
  [sites.basic]
  users_file = "users.txt"
  [sites.forward.assertion]
  key_file = "{KEY}"
  lifetime_seconds = 60
  [[sites.locations]]
  path = "/two-factor"
  require_password = true

[[sites]]
name = "NoMapping"
id = 3
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert"]
backend = "http://127.0.0.1:{BACKEND}"
  [[sites.bindings]]
  listen = "127.0.0.1:{P_NOMAP}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
"""

backend = None
server = None


def setUpModule():
    global backend, server
    backend = HostileBackend(BACKEND)
    backend.start()
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", KEY],
                   check=True, capture_output=True)
    # One event loop: every request shares one backend connection pool.
    server = Server(SITES, server_extra="body_timeout_ms = 1000", threads=1)
    r = subprocess.run([CERTGATE, "users", "add", "-f", os.path.join(server.dir, "users.txt"), "alice",
                        "--password-stdin"], input="alice-pw\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    server.start()


def tearDownModule():
    backend.stop()
    assert server.stop() == 0


def final(conn, path):
    """The final (non-1xx) answer to GET `path` on `conn`."""
    conn.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    while True:
        r = read_response(conn.file)
        if not 100 <= r.status < 200:
            return r


class BackendInterimAnswers(unittest.TestCase):
    def assert_next_user_gets_own_answer(self, path):
        other = Connection(P, timeout=5)
        try:
            r = final(other, path)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, path.encode(), "another request's answer was delivered")
        finally:
            other.close()

    def test_early_hints_do_not_desync_the_pool(self):
        """A 103 Early Hints before the final answer: the client gets the final answer, and the
        pooled backend connection is not left holding it for the next user (before: the 103
        ended the exchange, the connection went back to the pool, and the next request on it,
        from anyone, received this one's final answer)."""
        c = Connection(P, timeout=5)
        try:
            c.sock.sendall(b"GET /hints/1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            time.sleep(0.1)  # the 103 has come back; the final answer is 0.3 s away
            self.assert_next_user_gets_own_answer("/alice/1")
            r = read_response(c.file)
            while 100 <= r.status < 200:
                r = read_response(c.file)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"final answer of /hints/1")
        finally:
            c.close()
        self.assert_next_user_gets_own_answer("/alice/2")

    def test_interim_flood_is_bounded(self):
        """1000 interim answers: certgate gives up with 502 instead of relaying them all, and
        its backend connection is not reused."""
        c = Connection(P, timeout=5)
        try:
            r = final(c, "/flood/1")
            self.assertEqual(r.status, 502)
        finally:
            c.close()
        self.assert_next_user_gets_own_answer("/after-flood")

    def test_unrequested_switch_is_refused(self):
        """A 101 to a request that asked for no upgrade (certgate strips Upgrade) is an invalid
        answer: 502, and the switched backend connection is not pooled."""
        c = Connection(P, timeout=5)
        try:
            r = final(c, "/switch/1")
            self.assertEqual(r.status, 502)
        finally:
            c.close()
        time.sleep(0.5)
        self.assert_next_user_gets_own_answer("/after-switch")

    def test_close_delimited_answer_is_not_pooled(self):
        """An HTTP/1.1 answer without length ends at the close: that connection is finished and
        must not be pooled (before: the next request on it failed with 502)."""
        c = Connection(P, timeout=5)
        try:
            r = final(c, "/eof/1")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"body up to the close")
        finally:
            c.close()
        time.sleep(0.3)
        self.assert_next_user_gets_own_answer("/after-eof")

    def test_extra_answer_is_not_pooled(self):
        """A backend that sent more than the one answer asked for: the surplus must not become
        the next user's answer."""
        c = Connection(P, timeout=5)
        try:
            r = final(c, "/extra/1")
            self.assertEqual(r.body, b"first of /extra/1")
        finally:
            c.close()
        time.sleep(0.3)
        self.assert_next_user_gets_own_answer("/after-extra")

    def test_relayed_101_opens_no_tunnel(self):
        """A 101 to a WebSocket upgrade without the handshake's Sec-WebSocket-Accept is 502
        (before: certgate opened the byte tunnel, and the client's next bytes reached the backend
        as a raw request carrying its own X-Remote-User)."""
        c = Connection(P, timeout=5)
        try:
            c.sock.sendall(b"GET /ws-relayed HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           b"Sec-WebSocket-Version: 13\r\n\r\n")
            r = read_response(c.file)
            if r.status == 101:
                c.sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\nX-Remote-User: admin\r\n\r\n")
                smuggled = read_response(c.file)
                self.fail("tunnel opened; the backend answered: %r" % smuggled.body)
            self.assertEqual(r.status, 502)
        finally:
            c.close()


class SlowClients(unittest.TestCase):
    def test_proxied_body_is_bounded_by_body_timeout(self):
        """A client that announces a body and stops sending is answered 408 within
        body_timeout_ms (1 s here) and its backend connection released (before: the read of the
        client was never cancelled, so it held a backend connection for as long as it kept
        the TCP connection open)."""
        c = Connection(P, timeout=8)
        try:
            t0 = time.time()
            c.sock.sendall(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789")
            try:
                r = read_response(c.file)
            except (socket.timeout, TimeoutError):
                self.fail("no answer in 8 s: the stalled body is held without limit")
            self.assertEqual(r.status, 408)
            self.assertLess(time.time() - t0, 4)
        finally:
            c.close()

    def test_client_that_does_not_read_is_dropped(self):
        """A client that stops reading a large proxied answer is cut off after read_timeout_ms
        without progress (2 s here), not held with its backend connection forever."""
        c = Connection(P, timeout=3)
        try:
            c.sock.sendall(b"GET /huge HTTP/1.1\r\nHost: localhost\r\n\r\n")
            time.sleep(4)
            got = 0
            try:
                while True:
                    chunk = c.sock.recv(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
            except (socket.timeout, TimeoutError, OSError):
                pass
            self.assertLess(got, 64 << 20, "the whole answer was still there after 4 s of not reading")
        finally:
            c.close()


class LoggedPath(unittest.TestCase):
    def test_log_names_the_path_the_policy_saw(self):
        """cs-uri-stem is the decoded, normalised path (as IIS logs it), so a request for
        /public/..%2fsecure/x reads as the access to /secure/x it was (before: the raw target,
        which a search of the log for /secure misses)."""
        c = Connection(P, timeout=5)
        try:
            r = c.request("/public/..%2fsecure/x?stem=1")
            self.assertEqual(r.body, b"/secure/x?stem=1")
            c.request("/a%20b/./c/?stem=2")
        finally:
            c.close()
        self.assertEqual(server.log_entry("stem=1")["cs-uri-stem"], "/secure/x")
        self.assertEqual(server.log_entry("stem=2")["cs-uri-stem"], "/a+b/c/")


class CertificateWithoutMapping(unittest.TestCase):
    def test_validated_certificate_is_forwarded(self):
        """A site without mapping whose location validated the client's certificate forwards it
        (the backend maps, as IIS hands Request.ClientCertificate to the application), as the
        decision core intends (before: the handler never gave the core the certificate's facts
        on such a site, so nothing was ever forwarded)."""
        c = Connection(P_NOMAP, user="alice", timeout=5)
        try:
            r = c.request("/certificate")
        finally:
            c.close()
        self.assertEqual(r.status, 200, r.text)
        self.assertTrue(r.body.startswith(b"cert=MII"), r.body)
        c = Connection(P_NOMAP, timeout=5)
        try:
            r = c.request("/certificate")
        finally:
            c.close()
        self.assertEqual(r.body, b"cert=-")


class AssertionPerRequest(unittest.TestCase):
    def test_assertion_states_this_requests_method(self):
        """Two-factor (certificate + password) on one request, the certificate alone on the next
        of the same connection: the second assertion must not claim the password (before: the
        assertion cached per connection by user was re-sent, amr Certificate+Basic)."""
        c = Connection(P_ID, user="alice", timeout=5)
        try:
            pw = base64.b64encode(b"alice:alice-pw").decode()
            r = c.request("/two-factor/claims", headers={"Authorization": "Basic " + pw})
            self.assertEqual(r.status, 200, r.text)
            both = json.loads(r.body)
            r = c.request("/claims")
            self.assertEqual(r.status, 200, r.text)
            alone = json.loads(r.body)
        finally:
            c.close()
        self.assertEqual(both["sub"], "alice")
        self.assertNotEqual(both["amr"], alone["amr"])
        self.assertNotIn("Basic", json.dumps(alone["amr"]))


if __name__ == "__main__":
    unittest.main()
