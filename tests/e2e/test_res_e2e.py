"""Resource hardening against a hostile client, on the real binary over real sockets: request
bodies of static requests cost no memory and are framed strictly (RFC 9112 §6), the accept loop
backs off when descriptors run out, W3C logs are not world-readable, the backend connection
pool is never shared across sites or generations, and the client certificate list and the
session cache are bounded."""
import json
import os
import re
import resource
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import CERTGATE, Connection, Server, free_port, get, pki, read_response  # noqa: E402


def plain_site(name, port, site_id, extra=""):
    """A TLS site that asks for no client certificate; static files from www/."""
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


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line (2 and 3 were the pid and name).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tls_socket(port, timeout=10, context=None, session=None):
    ctx = context or ssl.create_default_context(cafile=pki("root-ca.pem"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost", session=session)


def exchange(sock, raw):
    """Sends raw bytes, returns (response, connection still open afterwards)."""
    sock.sendall(raw)
    f = sock.makefile("rb")
    r = read_response(f)
    try:
        sock.settimeout(2)
        closed = sock.recv(1) == b""
    except (socket.timeout, TimeoutError):
        closed = False
    except (ssl.SSLError, OSError):
        closed = True
    return r, not closed


# --- item 12: request bodies and their framing --------------------------------------------
class Bodies(unittest.TestCase):
    P = free_port()

    @classmethod
    def setUpClass(cls):
        cls.server = Server(plain_site("Bodies", cls.P, 1), threads=1).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def test_static_bodies_are_not_buffered(self):
        """50 connections each in the middle of a 990 kB body for a static file: the bodies
        must not be held in memory (before: +34 MiB, one string each)."""
        pid = self.server.proc.pid
        warm = tls_socket(self.P)
        r, _ = exchange(warm, b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertEqual(r.status, 200)
        before = rss_kib(pid)
        size = 990_000
        chunk = b"x" * 65536
        socks = []
        try:
            for _ in range(50):
                s = tls_socket(self.P)
                s.sendall(b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % size)
                left = size - 1  # all but the last byte: the server holds whatever it buffers
                while left:
                    n = min(left, len(chunk))
                    s.sendall(chunk[:n])
                    left -= n
                socks.append(s)
            time.sleep(0.5)
            grown = rss_kib(pid) - before
            self.assertLess(grown, 12 * 1024, f"RSS grew by {grown} KiB with 50 bodies in flight")
            # Each completed body is answered and the connection kept.
            for s in socks[:5]:
                r, open_ = exchange(s, b"x")
                self.assertEqual(r.status, 200)
                self.assertTrue(open_)
        finally:
            for s in socks:
                s.close()
            warm.close()

    def test_body_then_keep_alive(self):
        s = tls_socket(self.P)
        try:
            body = b"a" * 200_000
            s.sendall(b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            self.assertEqual(read_response(s.makefile("rb")).status, 200)
            s.sendall(b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
            r2 = read_response(s.makefile("rb"))
            self.assertEqual(r2.status, 200)
            self.assertEqual(r2.body, b"0123456789")
        finally:
            s.close()

    def test_chunked_body_with_extensions_then_keep_alive(self):
        s = tls_socket(self.P)
        try:
            raw = (b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n\r\n"
                   b"5;name=value;q=\"x y\"\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"
                   b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
            s.sendall(raw)
            f = s.makefile("rb")
            self.assertEqual(read_response(f).status, 200)
            r2 = read_response(f)
            self.assertEqual(r2.status, 200)
            self.assertEqual(r2.body, b"0123456789")
        finally:
            s.close()

    def refused(self, head, body=b"", status=400):
        s = tls_socket(self.P)
        try:
            # A smuggled request after the body: it must never be answered.
            smuggled = b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"
            r, open_ = exchange(s, head + b"\r\n" + body + smuggled)
            self.assertEqual(r.status, status, (head, r.text))
            self.assertFalse(open_, "the connection must close after a framing error")
        finally:
            s.close()

    def test_transfer_encoding_not_ending_in_chunked_is_400(self):
        # Before: "no body", the body bytes were read as the next request.
        base = b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\n"
        self.refused(base + b"Transfer-Encoding: gzip\r\n", b"5\r\nhello\r\n0\r\n\r\n")
        self.refused(base + b"Transfer-Encoding: chunked, gzip\r\n", b"5\r\nhello\r\n0\r\n\r\n")
        self.refused(base + b"Transfer-Encoding: chunked, chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")
        self.refused(base + b"Transfer-Encoding: chunked;q=1\r\n", b"5\r\nhello\r\n0\r\n\r\n")

    def test_other_codings_are_501(self):
        self.refused(b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n",
                     b"5\r\nhello\r\n0\r\n\r\n", status=501)

    def test_conflicting_framing_is_400(self):
        base = b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\n"
        self.refused(base + b"Transfer-Encoding: gzip\r\nContent-Length: 5\r\n", b"hello")
        self.refused(base + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"hello")
        self.refused(base + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"hello")
        self.refused(base + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")
        self.refused(base + b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello")
        self.refused(base + b"Content-Length: 5, 5\r\n", b"hello")
        self.refused(base + b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!")
        self.refused(b"GET /data.txt HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n",
                     b"5\r\nhello\r\n0\r\n\r\n")

    def test_hostile_chunks_get_an_answer(self):
        base = b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
        # Larger than max_body_bytes (or than 64 bits): refused, never waited for.
        self.refused(base, b"1000000000\r\n", status=413)
        self.refused(base, b"FFFFFFFFFFFFFFFFFFFF\r\nx\r\n")
        self.refused(base, b"zz\r\nhello\r\n0\r\n\r\n")
        self.refused(base, b"5;=\r\nhello\r\n0\r\n\r\n")

    def test_slow_body_times_out(self):
        port = free_port()
        server = Server(plain_site("Slow", port, 1), server_extra="body_timeout_ms = 1500", threads=1).start()
        s = tls_socket(port)
        try:
            s.sendall(b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n")
            started = time.time()
            for _ in range(3):  # a byte every 0.4 s keeps any per-read timeout happy
                s.sendall(b"x")
                time.sleep(0.4)
            r = read_response(s.makefile("rb"))  # the whole body's deadline: 1.5 s
            self.assertEqual(r.status, 408)
            self.assertLess(time.time() - started, 4)
        finally:
            s.close()
            self.assertEqual(server.stop(), 0)

    def test_endless_chunk_extension_is_bounded(self):
        """A chunk header that never ends: refused (or the connection closed) once it exceeds
        the buffer, without memory growing with it."""
        pid = self.server.proc.pid
        before = rss_kib(pid)
        s = tls_socket(self.P)
        sent = 0
        try:
            s.sendall(b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5;a=")
            junk = b"b" * 65536
            try:
                while sent < 20 * 1024 * 1024:
                    s.sendall(junk)
                    sent += len(junk)
            except (ssl.SSLError, OSError):
                pass
            grown = rss_kib(pid) - before
            self.assertLess(grown, 8 * 1024, f"RSS grew by {grown} KiB after {sent} bytes of chunk extension")
            self.assertLess(sent, 20 * 1024 * 1024, "the server kept reading an endless chunk-size line")
        finally:
            s.close()


# --- item 11: out of descriptors ------------------------------------------------------------
class Descriptors(unittest.TestCase):
    def test_accept_backs_off_and_resumes(self):
        port = free_port()
        server = Server(plain_site("Fds", port, 1), threads=1)
        limit = 64

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        server.stderr = open(os.path.join(server.dir, "stderr.log"), "w+")
        server.proc = subprocess.Popen([CERTGATE, "serve", "-c", server.config], cwd=server.dir,
                                       stdout=subprocess.PIPE, stderr=server.stderr, preexec_fn=low_limit)
        idle = []
        try:
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    self.assertLess(time.time(), deadline, server.stderr_text())
                    time.sleep(0.05)
            for _ in range(limit + 40):  # more than it can hold: the rest wait in the backlog
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            time.sleep(1.0)
            self.assertIsNone(server.proc.poll(), "certgate died: " + server.stderr_text())
            pid = server.proc.pid
            t0, c0 = time.time(), cpu_seconds(pid)
            time.sleep(2.0)
            used = cpu_seconds(pid) - c0
            self.assertLess(used, 0.3, f"{used:.2f} s of CPU in {time.time() - t0:.1f} s with descriptors exhausted")
            # Descriptors free again: new connections are served.
            for s in idle:
                s.close()
            idle = []
            deadline = time.time() + 10
            while True:
                try:
                    r = get(port, "/data.txt", tls=True)
                    break
                except OSError:
                    self.assertLess(time.time(), deadline, "no answer after descriptors were freed")
                    time.sleep(0.2)
            self.assertEqual(r.status, 200)
            lines = [l for l in server.stderr_text().splitlines() if "cannot accept connections" in l]
            self.assertEqual(len(lines), 1, server.stderr_text())
            self.assertIn("Too many open files", lines[0])
        finally:
            for s in idle:
                s.close()
            self.assertEqual(server.stop(), 0)


# --- item 14: W3C log modes -------------------------------------------------------------------
class LogModes(unittest.TestCase):
    def test_logs_are_0640_in_0750_directories_whatever_the_umask(self):
        p = free_port()
        sites = plain_site("Logs", p, 1) + plain_site("AdminDir", free_port(), 2) + \
            '  [sites.log]\n  directory = "admin-logs"\n'
        server = Server(sites, threads=1)
        admin_dir = os.path.join(server.dir, "admin-logs")
        os.mkdir(admin_dir)
        os.chmod(admin_dir, 0o755)  # the administrator's choice: kept
        old = os.umask(0)
        try:
            server.start()
        finally:
            os.umask(old)
        try:
            self.assertEqual(get(p, "/data.txt?logmode").status, 200)
            server.log_entry("logmode")
            logs = os.path.join(server.dir, "logs")
            site_dir = os.path.join(logs, "W3SVC1")
            files = [os.path.join(site_dir, f) for f in os.listdir(site_dir)]
            self.assertEqual(len(files), 1)
            self.assertEqual(oct(os.stat(files[0]).st_mode & 0o777), oct(0o640))
            self.assertEqual(oct(os.stat(site_dir).st_mode & 0o777), oct(0o750))
            self.assertEqual(oct(os.stat(logs).st_mode & 0o777), oct(0o750))
            # The second site logs into the administrator's folder.
            with open(server.config) as cfg:
                port2 = int(re.findall(r'listen = "127.0.0.1:(\d+)"', cfg.read())[1])
            self.assertEqual(get(port2, "/data.txt?admindir").status, 200)
            deadline = time.time() + 3
            while not os.listdir(admin_dir):
                self.assertLess(time.time(), deadline)
                time.sleep(0.1)
            f = os.path.join(admin_dir, os.listdir(admin_dir)[0])
            self.assertEqual(oct(os.stat(f).st_mode & 0o777), oct(0o640))
            self.assertEqual(oct(os.stat(admin_dir).st_mode & 0o777), oct(0o755))
        finally:
            self.assertEqual(server.stop(), 0)


# --- item 16: the backend connection pool -----------------------------------------------------
class BackendPool(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend_port = free_port()
        cls.tls_port = free_port()
        tmp = tempfile.mkdtemp(prefix="certgate-res-")
        cls.backend = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"), str(cls.backend_port),
             os.path.join(tmp, "b.sock"), str(cls.tls_port), pki("server-chain.pem"), pki("server.key")],
            stdout=subprocess.PIPE, text=True)
        assert cls.backend.stdout.readline().strip() == "ready"

    @classmethod
    def tearDownClass(cls):
        cls.backend.kill()
        cls.backend.wait()

    def proxy_site(self, name, port, site_id, verify):
        trust = '  trusted_cas = ["@PKI@/evil-root-ca.pem"]\n' if verify else ""
        return plain_site(name, port, site_id, f'backend = "https://127.0.0.1:{self.tls_port}"') + \
            f"  [sites.proxy]\n  verify = {'true' if verify else 'false'}\n{trust}"

    def test_verified_site_never_reuses_an_unverified_sites_connection(self):
        lax, strict = free_port(), free_port()
        server = Server(self.proxy_site("Lax", lax, 1, False) + self.proxy_site("Strict", strict, 2, True),
                        threads=1).start()
        try:
            # Control: the strict site cannot reach this backend on its own.
            self.assertEqual(get(strict, "/echo").status, 502)
            c = Connection(lax)
            r = c.request("/echo")
            self.assertEqual(r.status, 200, r.text)
            r = c.request("/echo")  # the pool works within the site
            self.assertEqual(r.status, 200, r.text)
            c.close()
            r = get(strict, "/echo")
            self.assertEqual(r.status, 502, "the strict site reused the lax site's backend connection")
            self.assertIn("502.3", r.text)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_reload_that_turns_verification_on_is_not_bypassed_by_the_pool(self):
        port = free_port()
        server = Server(self.proxy_site("Reload", port, 1, False), threads=1).start()
        try:
            self.assertEqual(get(port, "/echo").status, 200)
            server.edit_config("  verify = false\n", '  verify = true\n  trusted_cas = ["%s"]\n' % pki("evil-root-ca.pem"))
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while "reloaded: configuration generation" not in server.stderr_text():
                self.assertLess(time.time(), deadline, server.stderr_text())
                time.sleep(0.05)
            r = get(port, "/echo")
            self.assertEqual(r.status, 502, "a connection of the previous generation was reused")
        finally:
            self.assertEqual(server.stop(), 0)


# --- item 10: client certificate list and session cache --------------------------------------
def make_big_cert(directory, name, extension_bytes):
    """A self-signed client certificate carrying an extension of `extension_bytes` bytes."""
    key = os.path.join(directory, name + ".key")
    cert = os.path.join(directory, name + ".pem")
    cnf = os.path.join(directory, name + ".cnf")
    with open(cnf, "w") as f:
        f.write("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = " + name + "\n"
                "[ext]\n1.3.6.1.4.1.99999.1 = ASN1:UTF8String:" + "A" * extension_bytes + "\n")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-config", cnf, "-extensions", "ext"],
                   check=True, capture_output=True)
    return cert, key


class CertificateSite(unittest.TestCase):
    """A site asking for a client certificate; subclasses hold the tests."""
    server_extra = ""

    @classmethod
    def setUpClass(cls):
        cls.P = free_port()
        cls.tmp = tempfile.mkdtemp(prefix="certgate-res-certs-")
        cls.big = make_big_cert(cls.tmp, "big", 40_000)       # over the 32 KiB default
        cls.medium = make_big_cert(cls.tmp, "medium", 28_000)  # under it
        site = f"""
[[sites]]
name = "Certs"
id = 1
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{cls.P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  revocation = "off"
"""
        cls.server = Server(site, server_extra=cls.server_extra, threads=1).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def context(self, cert):
        ctx = ssl.create_default_context(cafile=pki("root-ca.pem"))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # the session exists when the handshake ends
        ctx.load_cert_chain(*cert)
        return ctx



class ClientCertificates(CertificateSite):
    def test_oversized_certificate_list_is_refused_and_logged(self):
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            s = tls_socket(self.P, context=self.context(self.big))
            try:
                s.sendall(b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
                read_response(s.makefile("rb"))
            finally:
                s.close()
        deadline = time.time() + 3
        while "max_client_cert_list_bytes" not in self.server.stderr_text():
            self.assertLess(time.time(), deadline, self.server.stderr_text())
            time.sleep(0.05)
        self.assertIn("TLS handshake from 127.0.0.1 refused: its client certificate list is larger than "
                      "max_client_cert_list_bytes (32768 bytes)", self.server.stderr_text())
        # A certificate under the limit gets through the handshake (and is judged: untrusted).
        s = tls_socket(self.P, context=self.context(self.medium))
        try:
            s.sendall(b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertEqual(read_response(s.makefile("rb")).code(), "403.16")
        finally:
            s.close()



class SessionCacheBytes(CertificateSite):
    server_extra = "session_cache_bytes = 1048576"

    def test_session_cache_is_bounded_in_bytes(self):
        """1 MiB of cache holds about 17 sessions whose client sent 28 kB: after 30, the first
        is gone (before: kept, the cache counted sessions only), the last still resumes."""
        ctx = self.context(self.medium)
        sessions = []
        for _ in range(30):
            s = tls_socket(self.P, context=ctx)
            s.sendall(b"GET /data.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertEqual(read_response(s.makefile("rb")).code(), "403.16")
            sessions.append(s.session)
            s.close()

        def resumes(session):
            s = tls_socket(self.P, context=ctx, session=session)
            try:
                return s.session_reused
            finally:
                s.close()

        self.assertTrue(resumes(sessions[-1]))
        self.assertFalse(resumes(sessions[0]), "the oldest session outlived the byte bound")


if __name__ == "__main__":
    unittest.main()
