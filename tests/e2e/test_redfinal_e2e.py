"""Final hostile review of the merged hardening, at the seams between areas, on the real binary
over real sockets: what one request leaves behind (on a pooled backend connection, a kept-alive
client connection) must never become part of another request."""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, mtls_site, read_response, run  # noqa: E402
from listeners import ConnectionServer, read_request  # noqa: E402

P_HTTP = free_port()
P_ADMIN = free_port()
TMP = tempfile.mkdtemp(prefix="certgate-redfinal-")
SOCK = os.path.join(TMP, "closing.sock")


class ClosingBackend(ConnectionServer):
    """A keep-alive backend on a unix socket that stops reading a connection after answering
    /first on it. Every request it reads is recorded with whatever came after it on the same
    connection within 0.5 s."""

    def __init__(self, path):
        super().__init__(path=path, backlog=16)
        self.requests = []  # (request line, headers, body, bytes that followed)
        # Set once a /first connection stopped reading: only then does certgate's next write on
        # it fail. Waited for, not slept for: on a loaded machine this thread may run late, and a
        # request written before the shutdown is read by nobody (a 502, not the retry tested).
        self.shut = threading.Event()

    def serve(self, c):
        f = c.makefile("rb")
        try:
            line, headers, body = read_request(f)
            if line is None:
                return
            c.settimeout(0.5)
            rest = b""
            if not line.startswith("GET /app/first"):
                try:  # a second request glued to this one (desynchronised framing) shows here
                    rest = c.recv(65536)
                except socket.timeout:
                    pass
            c.settimeout(None)
            self.requests.append((line, headers, body, rest))
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            if line.startswith("GET /app/first"):
                # Stop reading: certgate's next write on this pooled connection fails (EPIPE),
                # as when a backend closes an idle connection just as a request is sent.
                c.shutdown(socket.SHUT_RD)
                self.shut.set()
                time.sleep(2)
        except OSError:
            pass
        finally:
            c.close()



SITES = f"""
[[sites]]
name = "Plain"
id = 1
root = "www"
ssl_flags = []
  [[sites.bindings]]
  listen = "127.0.0.1:{P_HTTP}"
  protocol = "http"
  [[sites.locations]]
  path = "/app"
  backend = "unix:{SOCK}"
"""

backend = None
server = None


def setUpModule():
    global backend, server
    backend = ClosingBackend(SOCK)
    backend.start()
    # One event loop: all requests share one backend connection pool.
    server = Server(SITES, server_extra=f'admin_listen = "127.0.0.1:{P_ADMIN}"', threads=1)
    server.start()


def tearDownModule():
    backend.stop()
    assert server.stop() == 0


class RetriedForward(unittest.TestCase):
    def test_retry_on_fresh_connection_sends_one_request(self):
        """A pooled backend connection that the backend closes while certgate writes the next
        request head is retried on a fresh connection. The retry must send the same request:
        before, the head had its Content-Length and blank line appended a second time, so the
        backend read `Content-Length: 5` as the body and the client's body as the start of the
        next request on that connection: a request smuggled in the client's body, and the
        connection pooled with the next user's request glued to it."""
        c = socket.create_connection(("127.0.0.1", P_HTTP), timeout=10)
        f = c.makefile("rb")
        try:
            backend.shut.clear()
            c.sendall(b"GET /app/first HTTP/1.1\r\nHost: localhost\r\n\r\n")
            r = read_response(f)
            self.assertEqual(r.status, 200)
            self.assertTrue(backend.shut.wait(10), "the backend never stopped reading")
            time.sleep(0.2)  # the backend connection is back in the pool
            body = b"hello"
            c.sendall(b"POST /app/second HTTP/1.1\r\nHost: localhost\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            r = read_response(f)
            self.assertEqual(r.status, 200, r.body)
        finally:
            c.close()
        seconds = [req for req in backend.requests if req[0].startswith("POST /app/second")]
        self.assertEqual(len(seconds), 1, [(l, b, rest) for l, _, b, rest in backend.requests])
        line, headers, got, rest = seconds[0]
        self.assertEqual(got, body, "the backend read another body than the client sent")
        self.assertEqual(rest, b"", "bytes after the request on the backend connection")


    def test_retried_chunked_body_with_expect(self):
        """The same with a chunked body after `Expect: 100-continue`: the client gets one 100,
        the backend one request with the client's body."""
        c = socket.create_connection(("127.0.0.1", P_HTTP), timeout=10)
        f = c.makefile("rb")
        try:
            backend.shut.clear()
            c.sendall(b"GET /app/first HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertEqual(read_response(f).status, 200)
            self.assertTrue(backend.shut.wait(10), "the backend never stopped reading")
            time.sleep(0.2)
            c.sendall(b"POST /app/chunked HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            self.assertEqual(read_response(f).status, 100)
            c.sendall(b"5\r\nhello\r\n0\r\n\r\n")
            r = read_response(f)
            self.assertEqual(r.status, 200, r.body)
        finally:
            c.close()
        got = [req for req in backend.requests if req[0].startswith("POST /app/chunked")]
        self.assertEqual(len(got), 1, [(l, b, rest) for l, _, b, rest in backend.requests])
        self.assertEqual(got[0][2], b"hello")
        self.assertEqual(got[0][3], b"", "bytes after the request on the backend connection")


class OversizedFields(unittest.TestCase):
    """Beast holds a header field's length in 16 bits and throws on a longer one, from inside
    the parser: nothing catches it, and the whole server aborts."""

    def trailer_request(self, path):
        return (b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\nX-Trailer: " + b"a" * 70000 + b"\r\n\r\n")

    def assert_refused_and_alive(self, path, status):
        c = socket.create_connection(("127.0.0.1", P_HTTP), timeout=10)
        try:
            c.sendall(self.trailer_request(path))
            try:
                answer = c.recv(65536)
            except OSError:
                answer = b""
        finally:
            c.close()
        time.sleep(0.3)
        self.assertIsNone(server.proc.poll(), "certgate died: " + server.stderr_text()[-300:])
        self.assertTrue(answer.startswith(b"HTTP/1.1 %d " % status), answer[:100])
        c = socket.create_connection(("127.0.0.1", P_HTTP), timeout=10)
        try:
            c.sendall(b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertEqual(read_response(c.makefile("rb")).status, 200)
        finally:
            c.close()

    def test_long_trailer_field_on_a_static_request(self):
        """A 70 KB trailer field after a chunked body to a static file, default limits: 400 (the
        read buffer stays within what a field may hold); before, the process aborted
        (std::length_error "field value too large")."""
        self.assert_refused_and_alive(b"/data.txt", 400)

    def test_long_trailer_field_on_a_proxied_request(self):
        """The same trailer on a body streamed to a backend: 502 (the exchange's answer to a
        client body it cannot read), and the server lives on."""
        self.assert_refused_and_alive(b"/app/trailer", 502)

    def test_long_trailer_field_on_the_admin_listener(self):
        """The admin listener's GET /metrics with a chunked, empty body and a 70 KB trailer
        field: no answer needed, but the server lives on (before: aborted)."""
        c = socket.create_connection(("127.0.0.1", P_ADMIN), timeout=10)
        try:
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"0\r\nX-Trailer: " + b"a" * 70000 + b"\r\n\r\n")
            try:
                c.recv(65536)
            except OSError:
                pass
        finally:
            c.close()
        time.sleep(0.3)
        self.assertIsNone(server.proc.poll(), "certgate died: " + server.stderr_text()[-300:])

    def test_request_head_limit_cannot_exceed_a_field(self):
        """max_header_bytes above 65535 would let one header field abort the process: it is a
        configuration error now (it was accepted up to 1 MiB)."""
        path = os.path.join(TMP, "big-head.toml")
        with open(server.config) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("[server]\n", "[server]\nmax_header_bytes = 1048576\n", 1))
        r = run(["check-config", "-c", path])
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("max_header_bytes", r.stdout + r.stderr)


P_MTLS = free_port()
CDP = free_port()


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=TMP)


class TrailerCdp(threading.Thread):
    """A CRL distribution point that answers with a chunked body and a 70 KB trailer field."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(16)
        self.hits = 0

    def run(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.hits += 1
            try:
                c.settimeout(5)
                c.recv(65536)
                c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"3\r\nabc\r\n0\r\nX-Trailer: " + b"a" * 70000 + b"\r\n\r\n")
                time.sleep(0.5)
            except OSError:
                pass
            finally:
                c.close()


class FetchedTrailer(unittest.TestCase):
    """What a distribution point answers is as hostile as a client: plain http:// CRL URLs are
    answered by whoever sits on the path."""

    @classmethod
    def setUpClass(cls):
        ext = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
               "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n"
               f"crlDistributionPoints=URI:http://127.0.0.1:{CDP}/ca.crl\n")
        with open(os.path.join(TMP, "leaf.ext"), "w") as out:
            out.write(ext)
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                "-subj", "/CN=Trailer CA", "-days", "30", "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectKeyIdentifier=hash",
                "-out", "ca.pem")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "leaf.key",
                "-subj", "/CN=leaf", "-out", "leaf.csr")
        openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "7",
                "-days", "30", "-sha256", "-extfile", "leaf.ext", "-out", "leaf.pem")
        cls.cdp = TrailerCdp(CDP)
        cls.cdp.start()
        cls.server = Server(mtls_site("Trailer", P_MTLS, 1, f'trusted_cas = ["{os.path.join(TMP, "ca.pem")}"]'),
                            server_extra='cache_dir = ""', threads=1).start()

    @classmethod
    def tearDownClass(cls):
        cls.cdp.srv.close()
        assert cls.server.stop() == 0

    def test_long_trailer_field_from_a_distribution_point(self):
        """The CRL fetch gets a 70 KB trailer field: that fetch fails (the client is refused for
        want of revocation data), the server lives on; before, the process aborted."""
        c = Connection(P_MTLS, context=client_context("leaf", cert_dir=TMP))
        try:
            r = c.request("/")
        except (ConnectionError, OSError) as e:
            r = e
        finally:
            c.close()
        time.sleep(0.3)
        self.assertGreater(self.cdp.hits, 0, "the distribution point was not asked")
        self.assertIsNone(self.server.proc.poll(), "certgate died: " + self.server.stderr_text()[-300:])
        self.assertEqual(getattr(r, "status", None), 403, r)


if __name__ == "__main__":
    unittest.main()
