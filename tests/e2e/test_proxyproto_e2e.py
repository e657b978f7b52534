"""PROXY protocol v1/v2 on a binding (proxy_protocol, proxy_protocol_from) over raw sockets, and
the admin listener's /healthz and /readyz. The address a balancer's header names is the one the
W3C line (c-ip) and the backend (X-Forwarded-For) see; a header from a peer not in
proxy_protocol_from, a malformed, missing or slow one: the connection is closed, and logged."""
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, client_context, free_port, pki, read_response  # noqa: E402

P = free_port()          # proxy_protocol, trusted: 127.0.0.1
U = free_port()          # proxy_protocol, trusted: 127.0.0.9 only
BACKEND = free_port()
BACKEND_TLS = free_port()
SOCK = os.path.join(tempfile.mkdtemp(prefix="certgate-pp-"), "backend.sock")
SIG = b"\r\n\r\n\x00\r\nQUIT\n"

SITES = f"""
[[sites]]
name = "Proxied"
id = 1
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  proxy_protocol = true
  proxy_protocol_from = ["127.0.0.1/32", "::1"]
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  revocation = "cache-only"
  [[sites.locations]]
  path = "/echo"
  backend = "http://127.0.0.1:{BACKEND}"

[[sites]]
name = "Untrusting"
id = 2
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{U}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  proxy_protocol = true
  proxy_protocol_from = ["127.0.0.9"]
"""

backend = None
server = None


def setUpModule():
    global backend, server
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"), str(BACKEND),
                                SOCK, str(BACKEND_TLS), pki("server-chain.pem"), pki("server.key")],
                               stdout=subprocess.PIPE, text=True)
    assert backend.stdout.readline().strip() == "ready"
    server = Server(SITES, server_extra="handshake_timeout_ms = 1000", threads=1).start()


def tearDownModule():
    assert server.stop() == 0
    backend.kill()
    backend.wait()


def v1(src, family="TCP4", dst="127.0.0.1", sport=40000, dport=443):
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def v2_inet(src, sport=40000, command=0x21, tlvs=b""):
    block = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", sport, 443) + tlvs
    return SIG + bytes([command, 0x11]) + struct.pack("!H", len(block)) + block


def v2_inet6(src, sport=40000):
    block = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, "::1") + \
        struct.pack("!HH", sport, 443)
    return SIG + bytes([0x21, 0x21]) + struct.pack("!H", len(block)) + block


def tls_after(header, port=P, user="alice", path="/", coalesce=True, source="127.0.0.1", raw=None):
    """Sends `header`, then a TLS client's bytes on the same socket, and one request. With
    `coalesce`, the ClientHello goes in the same write as the header (the server must stop
    reading exactly at the header's end). `source`: the loopback address to connect from;
    `raw`: a socket already connected (and perhaps already fed the header's first part)."""
    raw = raw or socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    try:
        ctx = client_context(user)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
        pending = header if coalesce else b""
        if not coalesce:
            raw.sendall(header)

        def pump(op):
            nonlocal pending
            while True:
                try:
                    result = op()
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    result = None
                data = out.read()
                if data or pending:
                    raw.sendall(pending + data)
                    pending = b""
                if result is not None or obj.pending():
                    return result
                chunk = raw.recv(65536)
                if not chunk:
                    raise ConnectionError("closed by the server")
                inc.write(chunk)

        pump(lambda: obj.do_handshake() or True)
        pump(lambda: obj.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()))
        body = b""
        while True:
            try:
                part = pump(lambda: obj.read(65536))
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionError):
                break
            if not part:
                break
            body += part
        return body.decode(errors="replace")
    finally:
        raw.close()


def closed_without_answer(sock, timeout=5):
    """True when the server closes `sock` (EOF or reset) before sending a byte."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def wait_for_log(text, timeout=5):
    deadline = time.time() + timeout
    while text not in server.stderr_text():
        if time.time() > deadline:
            raise AssertionError(f"no {text!r} in the server's log: {server.stderr_text()[-2000:]}")
        time.sleep(0.05)


class ProxyProtocolTests(unittest.TestCase):
    def assert_client(self, header, query, ip, coalesce=True):
        text = tls_after(header, path=f"/?{query}", coalesce=coalesce)
        self.assertIn("200 OK", text.split("\r\n")[0])
        self.assertEqual(server.log_entry(query)["c-ip"], ip)

    def test_v1_tcp4_address_is_c_ip(self):
        self.assert_client(v1("192.0.2.7"), "v1-tcp4", "192.0.2.7")

    def test_v1_header_in_its_own_segment(self):
        self.assert_client(v1("192.0.2.8"), "v1-split", "192.0.2.8", coalesce=False)

    def test_v1_tcp6(self):
        self.assert_client(v1("2001:db8::7", family="TCP6", dst="::1"), "v1-tcp6", "2001:db8::7")

    def test_v1_unknown_keeps_the_real_peer(self):
        self.assert_client(b"PROXY UNKNOWN\r\n", "v1-unknown", "127.0.0.1")

    def test_v2_inet(self):
        self.assert_client(v2_inet("127.0.0.5"), "v2-inet", "127.0.0.5")

    def test_v2_inet6(self):
        self.assert_client(v2_inet6("2001:db8::5"), "v2-inet6", "2001:db8::5")

    def test_v2_tlvs_are_skipped(self):
        tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x05noise"  # ALPN, NOOP
        self.assert_client(v2_inet("198.51.100.3", tlvs=tlvs), "v2-tlv", "198.51.100.3")

    def test_v2_local_keeps_the_real_peer(self):
        self.assert_client(v2_inet("203.0.113.9", command=0x20), "v2-local", "127.0.0.1")

    def test_v2_unspec_keeps_the_real_peer(self):
        self.assert_client(SIG + b"\x21\x00\x00\x00", "v2-unspec", "127.0.0.1")

    def test_backend_sees_the_header_address_in_x_forwarded_for(self):
        text = tls_after(v2_inet("192.0.2.44"), path="/echo?xff")
        reply = json.loads(text.split("\r\n\r\n", 1)[1])
        xff = [v for k, v in reply["headers"] if k.lower() == "x-forwarded-for"]
        self.assertEqual(xff, ["192.0.2.44"])
        self.assertEqual(server.log_entry("xff")["c-ip"], "192.0.2.44")

    def test_malformed_v1_is_closed_and_logged(self):
        s = socket.create_connection(("127.0.0.1", P), timeout=10)
        s.sendall(b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 443\r\n")
        self.assertTrue(closed_without_answer(s))
        s.close()
        wait_for_log("malformed PROXY header: v1 port")

    def test_malformed_v2_is_closed_and_logged(self):
        s = socket.create_connection(("127.0.0.1", P), timeout=10)
        s.sendall(SIG + b"\x21\x11\x00\x04abcd")  # an INET block of 4 bytes
        self.assertTrue(closed_without_answer(s))
        s.close()
        wait_for_log("v2 address block shorter")

    def test_oversized_v2_is_refused_before_its_body(self):
        s = socket.create_connection(("127.0.0.1", P), timeout=10)
        s.sendall(SIG + b"\x21\x11\xff\xff")
        self.assertTrue(closed_without_answer(s))
        s.close()
        wait_for_log("at most 2064 accepted")

    def test_missing_header_from_a_trusted_peer_is_closed_and_logged(self):
        raw = socket.create_connection(("127.0.0.1", P), timeout=10)
        ctx = client_context("alice")
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            ctx.wrap_socket(raw, server_hostname="localhost")
        raw.close()
        wait_for_log("no PROXY header (a TLS handshake came first)")

    def test_untrusted_peer_is_refused_even_with_a_good_header(self):
        s = socket.create_connection(("127.0.0.1", U), timeout=10)
        try:
            s.sendall(v1("192.0.2.7"))
        except OSError:
            pass
        self.assertTrue(closed_without_answer(s))
        s.close()
        wait_for_log(f"PROXY protocol: connection from 127.0.0.1 to 127.0.0.1:{U} closed: not in proxy_protocol_from")

    def test_slow_header_is_cut_at_the_deadline(self):
        # One byte every 200 ms: the 42-byte header would take 8 s; handshake_timeout_ms is 1 s.
        s = socket.create_connection(("127.0.0.1", P), timeout=10)
        header = v1("192.0.2.7")
        cut = False
        for i in range(len(header)):
            try:
                s.sendall(header[i:i + 1])
            except OSError:
                cut = True
                break
            s.settimeout(0.2)
            try:
                if s.recv(1) == b"":
                    cut = True
                    break
            except socket.timeout:
                continue
            except ConnectionResetError:
                cut = True
                break
        s.close()
        self.assertTrue(cut, "the server kept a header that dripped for longer than its deadline")
        wait_for_log("no complete PROXY header within handshake_timeout_ms (1000 ms)")

    def test_silent_connection_is_cut_at_the_deadline(self):
        s = socket.create_connection(("127.0.0.1", P), timeout=10)
        self.assertTrue(closed_without_answer(s, timeout=8))
        s.close()


class LocalClientTests(unittest.TestCase):
    def test_detailed_errors_local_judges_the_header_address(self):
        """Under detailed_errors = "local", a client the balancer says is remote gets the page
        without details, although the TCP peer (the balancer) is on loopback."""
        port = free_port()
        srv = Server(f"""
[[sites]]
name = "Local"
id = 1
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  proxy_protocol = true
  proxy_protocol_from = ["127.0.0.1"]
""", threads=1)
        srv.edit_config('detailed_errors = "always"', 'detailed_errors = "local"')
        srv.start()
        try:
            remote = tls_after(v2_inet("192.0.2.7"), port=port, user=None, path="/missing.txt?remote")
            local = tls_after(v2_inet("127.0.0.1"), port=port, user=None, path="/missing.txt?local")
        finally:
            srv.stop()
        self.assertIn("404", remote.split("\r\n")[0])
        self.assertIn("404", local.split("\r\n")[0])
        # The details table (its win32 code, "0x80070002") is shown only to a local client.
        self.assertNotRegex(remote, r"0x[0-9A-Fa-f]{8}")
        self.assertRegex(local, r"0x[0-9A-Fa-f]{8}")
        self.assertEqual(srv.log_entry("remote")["c-ip"], "192.0.2.7")


CA_SITE = """
[[sites]]
name = "CacheOnly"
id = 1
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  revocation = "{revocation}"
  crl_files = []
"""


def admin_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode(), r.headers.get("Cache-Control")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Cache-Control")


class HealthTests(unittest.TestCase):
    def start(self, revocation):
        admin = free_port()
        s = Server(CA_SITE.format(port=free_port(), revocation=revocation),
                   server_extra=f'admin_listen = "127.0.0.1:{admin}"\ncache_dir = ""', threads=1).start()
        self.addCleanup(s.stop)
        return s, admin

    def test_healthz_and_readyz_when_ready(self):
        s, admin = self.start("online")
        self.assertEqual(admin_get(admin, "/healthz"), (200, "ok\n", "no-store"))
        self.assertEqual(admin_get(admin, "/readyz"), (200, "ready\n", "no-store"))

    def test_readyz_waits_for_a_cache_only_site_to_have_its_crls(self):
        s, admin = self.start("cache-only")
        status, body, _ = admin_get(admin, "/readyz")
        self.assertEqual(status, 503)
        self.assertIn('site "CacheOnly" (revocation = cache-only): no current CRL from', body)
        self.assertIn("Root CA", body)
        self.assertEqual(admin_get(admin, "/healthz")[0], 200)  # alive all the same
        # The CRL arrives with a reload: ready.
        s.edit_config("crl_files = []", 'crl_files = ["' + pki("crl/root-ca.crl") + '"]')
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while admin_get(admin, "/readyz")[0] != 200:
            self.assertLess(time.time(), deadline, admin_get(admin, "/readyz"))
            time.sleep(0.05)
        self.assertEqual(admin_get(admin, "/readyz")[1], "ready\n")

    def test_unknown_admin_path_is_404(self):
        s, admin = self.start("online")
        self.assertEqual(admin_get(admin, "/ready")[0], 404)


if __name__ == "__main__":
    unittest.main()
