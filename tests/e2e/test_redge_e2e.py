"""A hostile pass over the PROXY protocol bindings and the shared ticket keys (docs/security.md,
"PROXY protocol and shared ticket keys: a hostile pass"), against the real binary over raw
sockets and Python's ssl. Each test is an attack: the ones that found something fail on the
binary before the fix; the others pin down what held."""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, client_context, free_port, pki, read_response  # noqa: E402
from test_proxyproto_e2e import SIG, closed_without_answer, tls_after, v1, v2_inet, v2_inet6  # noqa: E402

P = free_port()        # https, PROXY header from 127.0.0.1
H = free_port()        # plain http, PROXY header from 127.0.0.1
M = free_port()        # https, proxy_protocol_from written as an IPv4-mapped address (127.0.0.2)
BACKEND = free_port()
BACKEND_TLS = free_port()
WORK = tempfile.mkdtemp(prefix="certgate-redge-")
SOCK = os.path.join(WORK, "backend.sock")

SITES = f"""
[[sites]]
name = "Edge"
id = 1
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  proxy_protocol = true
  proxy_protocol_from = ["127.0.0.1"]
  [[sites.bindings]]
  listen = "127.0.0.1:{H}"
  protocol = "http"
  proxy_protocol = true
  proxy_protocol_from = ["127.0.0.1"]
  [[sites.locations]]
  path = "/echo"
  backend = "http://127.0.0.1:{BACKEND}"

[[sites]]
name = "Mapped"
id = 2
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{M}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  proxy_protocol = true
  proxy_protocol_from = ["::ffff:127.0.0.2"]
"""

backend = server = None


def setUpModule():
    global backend, server
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"), str(BACKEND),
                                SOCK, str(BACKEND_TLS), pki("server-chain.pem"), pki("server.key")],
                               stdout=subprocess.PIPE, text=True)
    assert backend.stdout.readline().strip() == "ready"
    server = Server(SITES, server_extra="handshake_timeout_ms = 1000", threads=1)
    server.edit_config('detailed_errors = "always"', 'detailed_errors = "local"')
    server.start()


def tearDownModule():
    assert server.stop() == 0
    backend.kill()
    backend.wait()


def wait_for_log(srv, text, timeout=5):
    deadline = time.time() + timeout
    while text not in srv.stderr_text():
        if time.time() > deadline:
            raise AssertionError(f"no {text!r} in the server's log: {srv.stderr_text()[-2000:]}")
        time.sleep(0.05)


def missing(header, query, port=P, **kw):
    """A 404 through `header` (no client certificate): its text, with or without details."""
    text = tls_after(header, port=port, user=None, path=f"/missing.txt?{query}", **kw)
    assert " 404 " in text.split("\r\n")[0], text[:300]
    return text


def plain(header_and_request, port=H):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(header_and_request)
        return read_response(s.makefile("rb"))
    finally:
        s.close()


def details(text):
    """The error page's win32 code (e.g. "0x80070002"): shown only with the details."""
    return re.search(r"0x[0-9A-Fa-f]{8}", text) is not None


class HeaderWithoutAnAddress(unittest.TestCase):
    """The balancer on loopback relays a client whose address its header does not carry. The
    balancer's own address is logged (the specification's "real connection endpoints"), but
    the client is not local: detailed_errors = "local" must not show it the details."""

    def test_control_a_loopback_client_named_by_the_header_gets_details(self):
        self.assertTrue(details(missing(v2_inet("127.0.0.1"), "named-local")))
        self.assertFalse(details(missing(v2_inet("192.0.2.7"), "named-remote")))

    def test_v1_unknown(self):
        self.assertFalse(details(missing(b"PROXY UNKNOWN\r\n", "v1-unknown")))
        self.assertEqual(server.log_entry("v1-unknown")["c-ip"], "127.0.0.1")

    def test_v2_proxy_unspec(self):
        self.assertFalse(details(missing(SIG + b"\x21\x00\x00\x00", "v2-unspec")))

    def test_v2_proxy_unix(self):
        block = b"/run/client.sock".ljust(108, b"\0") + b"/run/lb.sock".ljust(108, b"\0")
        self.assertFalse(details(missing(SIG + b"\x21\x31" + struct.pack("!H", len(block)) + block, "v2-unix")))

    def test_v2_local(self):
        self.assertFalse(details(missing(SIG + b"\x20\x00\x00\x00", "v2-local")))
        self.assertEqual(server.log_entry("v2-local")["c-ip"], "127.0.0.1")


class HaproxyUnixFrontEnd(unittest.TestCase):
    """The same with the real balancer: Debian's haproxy relays a client that reached it over a
    Unix socket (a layered setup: one haproxy in front of another) with v1 "PROXY UNKNOWN" and
    v2 LOCAL — not only its own health checks say LOCAL."""

    def test_clients_of_a_unix_socket_front_end_are_not_local(self):
        if not shutil.which("haproxy"):
            if os.environ.get("CI") == "true":
                self.fail("haproxy is not installed (scripts/install-deps.sh)")
            self.skipTest("haproxy not installed (scripts/install-deps.sh)")
        front = os.path.join(WORK, "front")
        with open(os.path.join(WORK, "haproxy.cfg"), "w") as f:
            f.write(f"""
global
  maxconn 16
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend v1
  bind unix@{front}-v1.sock
  default_backend v1
backend v1
  server certgate 127.0.0.1:{P} send-proxy
frontend v2
  bind unix@{front}-v2.sock
  default_backend v2
backend v2
  server certgate 127.0.0.1:{P} send-proxy-v2
""")
        haproxy = subprocess.Popen(["haproxy", "-db", "-f", os.path.join(WORK, "haproxy.cfg")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for version in ("v1", "v2"):
                path = f"{front}-{version}.sock"
                deadline = time.time() + 10
                while not os.path.exists(path):
                    self.assertLess(time.time(), deadline, "haproxy did not listen")
                    time.sleep(0.05)
                raw = socket.socket(socket.AF_UNIX)
                raw.settimeout(10)
                raw.connect(path)
                with client_context(None).wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(f"GET /missing.txt?hap-{version} HTTP/1.1\r\nHost: localhost\r\n"
                                "Connection: close\r\n\r\n".encode())
                    r = read_response(tls.makefile("rb"))
                self.assertEqual(r.status, 404)
                self.assertFalse(details(r.text), f"haproxy's {version} client got the local details")
                self.assertEqual(server.log_entry(f"hap-{version}")["c-ip"], "127.0.0.1")
        finally:
            haproxy.terminate()
            haproxy.wait(10)


class MappedAddresses(unittest.TestCase):
    """IPv4-mapped IPv6 addresses: in the header (HAProxy writes an IPv4 client so when its two
    sides differ in family) and in proxy_protocol_from."""

    def test_v1_tcp6_mapped_client_is_the_ipv4_client(self):
        text = missing(v1("::ffff:127.0.0.1", family="TCP6", dst="::1"), "v1-mapped-loopback")
        self.assertTrue(details(text))  # the loopback client it is
        self.assertEqual(server.log_entry("v1-mapped-loopback")["c-ip"], "127.0.0.1")

    def test_v2_inet6_mapped_client_is_logged_and_forwarded_as_ipv4(self):
        text = tls_after(v2_inet6("::ffff:192.0.2.9"), port=P, user=None, path="/echo?v2-mapped")
        reply = json.loads(text.split("\r\n\r\n", 1)[1])
        self.assertEqual([v for k, v in reply["headers"] if k.lower() == "x-forwarded-for"], ["192.0.2.9"])
        self.assertEqual(server.log_entry("v2-mapped")["c-ip"], "192.0.2.9")

    def test_mapped_address_in_proxy_protocol_from_trusts_that_ipv4_peer(self):
        text = tls_after(v1("198.51.100.4"), port=M, user=None, path="/?mapped-from", source="127.0.0.2")
        self.assertIn("200 OK", text.split("\r\n")[0])
        self.assertEqual(server.log_entry("mapped-from", site_id=2)["c-ip"], "198.51.100.4")

    def test_mapped_address_in_proxy_protocol_from_trusts_no_other_peer(self):
        s = socket.create_connection(("127.0.0.1", M), timeout=10)
        try:
            s.sendall(v2_inet("127.0.0.1") + b"\x16\x03\x01\x00\x05hello")
        except OSError:
            pass
        self.assertTrue(closed_without_answer(s))
        s.close()
        wait_for_log(server, f"connection from 127.0.0.1 to 127.0.0.1:{M} closed: not in proxy_protocol_from")


class Spoofing(unittest.TestCase):
    def test_second_header_inside_tls_is_not_a_header(self):
        # A client behind a trusted balancer opens with its own header: it reaches the TLS layer
        # as a handshake's first bytes, and the handshake fails.
        for inner in (v1("127.0.0.1"), v2_inet("127.0.0.1")):
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                tls_after(v1("192.0.2.7") + inner, port=P, user=None, path="/?second-header")
        self.assertNotIn("second-header", "\n".join(server.log_lines(1)))

    def test_second_header_on_plain_http_is_a_bad_request(self):
        r = plain(v1("192.0.2.7") + v1("127.0.0.1") +
                  b"GET /missing.txt?second-plain HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertEqual(r.status, 400)
        self.assertFalse(details(r.text))
        self.assertNotIn("second-plain", "\n".join(server.log_lines(1)))

    def test_client_forwarding_headers_are_replaced_by_the_header_address(self):
        r = plain(v1("192.0.2.70") +
                  b"GET /echo?spoof HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 127.0.0.1\r\n"
                  b"Forwarded: for=127.0.0.1\r\nX_Forwarded_For: 127.0.0.1\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.status, 200)
        headers = json.loads(r.body)["headers"]
        self.assertEqual([v for k, v in headers if k.lower().replace("_", "-") == "x-forwarded-for"],
                         ["192.0.2.70"])
        self.assertEqual([v for k, v in headers if k.lower() == "forwarded"], ['for=192.0.2.70;proto=http;host="localhost"'])
        self.assertEqual(server.log_entry("spoof")["c-ip"], "192.0.2.70")


class HeaderBytes(unittest.TestCase):
    def test_v2_byte_by_byte_then_the_hello(self):
        header = v2_inet("192.0.2.21")
        raw = socket.create_connection(("127.0.0.1", P), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(header) - 1):
            raw.sendall(header[i:i + 1])
            time.sleep(0.01)
        text = tls_after(header[-1:], port=P, user=None, path="/?v2-drip", raw=raw)
        self.assertIn("200 OK", text.split("\r\n")[0])
        self.assertEqual(server.log_entry("v2-drip")["c-ip"], "192.0.2.21")

    def test_v1_in_pieces_with_the_hello_after_its_crlf(self):
        header = v1("192.0.2.22")
        raw = socket.create_connection(("127.0.0.1", P), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in (header[:3], header[3:9], header[9:-1]):  # "\r" and "\n" apart
            raw.sendall(piece)
            time.sleep(0.05)
        text = tls_after(header[-1:], port=P, user=None, path="/?v1-pieces", raw=raw)
        self.assertIn("200 OK", text.split("\r\n")[0])
        self.assertEqual(server.log_entry("v1-pieces")["c-ip"], "192.0.2.22")

    def test_v2_family_and_transport_that_do_not_go_together(self):
        block = socket.inet_aton("127.0.0.1") * 2 + struct.pack("!HH", 1, 443)
        for fam in (b"\x10", b"\x20", b"\x01", b"\x32"):  # INET/INET6 without transport, UNSPEC stream, UNIX dgram
            blk = block if fam != b"\x32" else b"\0" * 216
            s = socket.create_connection(("127.0.0.1", P), timeout=10)
            s.sendall(SIG + b"\x21" + fam + struct.pack("!H", len(blk)) + blk + b"\x16\x03\x01\x00\x05hello")
            self.assertTrue(closed_without_answer(s), fam)
            s.close()
        wait_for_log(server, "malformed PROXY header: v2 address family and transport do not go together")
        wait_for_log(server, "malformed PROXY header: v2 PROXY for a datagram on a stream listener")

    def test_v2_length_longer_than_the_block_swallows_the_hello(self):
        # The header claims 40 bytes of TLVs it does not send: the server takes them from the
        # ClientHello, and the handshake that remains fails; nothing is served.
        block = socket.inet_aton("192.0.2.23") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 1, 443)
        lying = SIG + b"\x21\x11" + struct.pack("!H", len(block) + 40) + block
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            tls_after(lying, port=P, user=None, path="/?lying-length")
        self.assertNotIn("lying-length", "\n".join(server.log_lines(1)))

    def test_v1_and_v2_signatures_mixed(self):
        for bad in (b"PROXY " + SIG + b"\x21\x11\x00\x0c" + b"\0" * 12 + b"\r\n",
                    SIG[:6] + b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\n"):
            s = socket.create_connection(("127.0.0.1", P), timeout=10)
            s.sendall(bad)
            self.assertTrue(closed_without_answer(s), bad)
            s.close()


class HalfOpen(unittest.TestCase):
    def test_connections_still_in_their_header_count_against_max_connections(self):
        port = free_port()
        srv = Server(f"""
[[sites]]
name = "Small"
id = 1
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  proxy_protocol = true
  proxy_protocol_from = ["127.0.0.1"]
""", server_extra="max_connections = 3\nhandshake_timeout_ms = 20000", threads=1).start()
        try:
            deadline = time.time() + 10
            while True:  # the harness's own probes of the port have been let go
                try:
                    if "200 OK" in tls_after(v1("192.0.2.1"), port=port, user=None, path="/?warm"):
                        break
                except (ssl.SSLError, OSError):
                    pass
                self.assertLess(time.time(), deadline)
                time.sleep(0.1)
            deadline = time.time() + 10
            while True:  # until the warm-up's connection is let go: three silent ones are held
                silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
                if all(still_open(s) for s in silent):
                    break
                for s in silent:
                    s.close()
                self.assertLess(time.time(), deadline, "three silent connections were never all held")
                time.sleep(0.2)
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                tls_after(v1("192.0.2.2"), port=port, user=None, path="/?over-the-limit")
            for s in silent:
                s.close()
            deadline = time.time() + 10
            while True:
                try:
                    if "200 OK" in tls_after(v1("192.0.2.3"), port=port, user=None, path="/?freed"):
                        break
                except (ssl.SSLError, OSError):
                    pass
                self.assertLess(time.time(), deadline, "the silent connections were never let go")
                time.sleep(0.1)
        finally:
            srv.stop()
        self.assertNotIn("over-the-limit", "\n".join(srv.log_lines(1)))


class Reload(unittest.TestCase):
    def test_a_reload_that_drops_a_balancer_refuses_it_at_once(self):
        port = free_port()
        srv = Server(f"""
[[sites]]
name = "Narrowed"
id = 1
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  proxy_protocol = true
  proxy_protocol_from = ["127.0.0.0/8"]
""", threads=1).start()
        try:
            self.assertIn("200 OK", tls_after(v1("192.0.2.31"), port=port, user=None, path="/?wide"))
            srv.edit_config('["127.0.0.0/8"]', '["127.0.0.9"]')
            reload(srv, "reloaded")
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            try:
                s.sendall(v1("192.0.2.32") + b"\x16\x03\x01\x00\x05hello")
            except OSError:
                pass
            self.assertTrue(closed_without_answer(s))
            s.close()
            wait_for_log(srv, f"connection from 127.0.0.1 to 127.0.0.1:{port} closed: not in proxy_protocol_from")
            self.assertIn("200 OK", tls_after(v1("192.0.2.33"), port=port, user=None, path="/?narrow",
                                              source="127.0.0.9"))
        finally:
            srv.stop()
        self.assertEqual(srv.log_entry("narrow")["c-ip"], "192.0.2.33")


class AdminListener(unittest.TestCase):
    def test_a_probe_while_out_of_descriptors_does_not_spin_the_loop(self):
        # Clients hold every descriptor (max_connections above the open-files limit); the
        # balancer's /readyz probe arrives: the admin acceptor must pause like the client
        # listeners do, not retry accept() at once for as long as the descriptors stay taken.
        port, admin = free_port(), free_port()
        srv = Server(f"""
[[sites]]
name = "Full"
id = 1
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
""", server_extra=f'admin_listen = "127.0.0.1:{admin}"\ncache_dir = ""\nhandshake_timeout_ms = 30000',
                     threads=1).start()
        held, probe = [], None
        try:
            subprocess.run(["prlimit", f"--pid={srv.proc.pid}", "--nofile=64:64"], check=True)
            held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(80)]
            wait_for_log(srv, "cannot accept connections")
            probe = socket.create_connection(("127.0.0.1", admin), timeout=10)
            probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: lb\r\n\r\n")
            before = cpu_seconds(srv.proc.pid)
            time.sleep(1.0)
            spent = cpu_seconds(srv.proc.pid) - before
            self.assertLess(spent, 0.25, f"{spent:.2f} s of CPU in one second: the admin acceptor spins")
            for s in held:
                s.close()
            held = []
            r = read_response(probe.makefile("rb"))  # answered once descriptors are free
            self.assertEqual((r.status, r.body), (200, b"ok\n"))
        finally:
            for s in held + ([probe] if probe else []):
                s.close()
            srv.stop()


def still_open(sock):
    """True when the server neither closed nor answered `sock` within 0.3 s."""
    sock.settimeout(0.3)
    try:
        return sock.recv(1) != b""
    except socket.timeout:
        return True
    except ConnectionResetError:
        return False


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


TICKET_SITE = """
[[sites]]
name = "Tickets"
id = 1
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  revocation = "cache-only"
"""


def write_key(name, data):
    path = os.path.join(WORK, name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


def ticket_server(*keys):
    port = free_port()
    files = ", ".join(f'"{k}"' for k in keys)
    srv = Server(TICKET_SITE.format(port=port), server_extra=f'ticket_key_files = [{files}]\ncache_dir = ""',
                 threads=1)
    return srv, port


def tls_get(port, ctx, query, session=None):
    """(status, session, reused) of one request with alice's certificate."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    try:
        s.sendall(f"GET /?{query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        status = read_response(s.makefile("rb")).status
        return status, s.session, s.session_reused
    finally:
        s.close()


def reload(srv, outcome):
    before = srv.stderr_text().count(outcome)
    srv.proc.send_signal(signal.SIGHUP)
    wait_for_log_count(srv, outcome, before + 1)


def wait_for_log_count(srv, text, n, timeout=10):
    deadline = time.time() + timeout
    while srv.stderr_text().count(text) < n:
        if time.time() > deadline:
            raise AssertionError(f"no {text!r} in the server's log: {srv.stderr_text()[-2000:]}")
        time.sleep(0.05)


class TicketKeys(unittest.TestCase):
    def test_a_key_file_of_one_repeated_byte_is_refused(self):
        for name, data in (("zero.key", bytes(80)),
                           ("repeated.key", os.urandom(16) + b"\xaa" * 64),
                           ("same-halves.key", os.urandom(16) + bytes(range(32)) * 2)):
            srv, _ = ticket_server(write_key(name, data))
            with self.assertRaises(RuntimeError) as caught:
                srv.start()
                srv.stop()
            srv.proc.stdout.close()
            srv.stderr.close()
            self.assertIn(f"{name}: not random key material", str(caught.exception))

    def test_a_reload_with_a_bad_key_file_keeps_the_running_keys(self):
        key = write_key("running.key", os.urandom(80))
        srv, port = ticket_server(key)
        srv.start()
        try:
            ctx = client_context("alice")
            status, session, _ = tls_get(port, ctx, "before-bad-reload")
            self.assertEqual(status, 200)
            for bad in (os.urandom(79), os.urandom(81), bytes(80)):
                write_key("running.key", bad)
                reload(srv, "reload refused, the running configuration stays in force")
                status, _, reused = tls_get(port, ctx, "after-bad-reload", session=session)
                self.assertEqual(status, 200)
                self.assertTrue(reused, "a refused reload cost the running ticket keys")
        finally:
            srv.stop()

    def test_same_key_name_other_secret_is_a_full_handshake(self):
        # Another deployment (or an attacker's file) reusing a key name: the ticket's HMAC does
        # not verify under the other secret; the client authenticates again in full.
        shared = os.urandom(80)
        a, pa = ticket_server(write_key("name-a.key", shared))
        b, pb = ticket_server(write_key("name-b.key", shared[:16] + os.urandom(64)))
        a.start()
        b.start()
        try:
            ctx = client_context("alice")
            status, session, _ = tls_get(pa, ctx, "on-a")
            self.assertEqual(status, 200)
            self.assertTrue(tls_get(pa, ctx, "again-on-a", session=session)[2])  # control
            status, _, reused = tls_get(pb, ctx, "on-b", session=session)
            self.assertEqual(status, 200)
            self.assertFalse(reused)
        finally:
            a.stop()
            b.stop()

    def test_a_ticket_under_a_dropped_key_is_a_full_handshake(self):
        old, new = write_key("old.key", os.urandom(80)), write_key("new.key", os.urandom(80))
        srv, port = ticket_server(old)
        srv.start()
        try:
            ctx = client_context("alice")
            status, session, _ = tls_get(port, ctx, "under-old")
            self.assertEqual(status, 200)
            srv.edit_config(f'["{old}"]', f'["{new}", "{old}"]')
            reload(srv, "reloaded")
            status, renewed, reused = tls_get(port, ctx, "old-still-read", session=session)
            self.assertTrue(reused)  # a later file still decrypts
            srv.edit_config(f'["{new}", "{old}"]', f'["{new}"]')
            reload(srv, "reloaded")
            status, _, reused = tls_get(port, ctx, "old-dropped", session=session)
            self.assertEqual(status, 200)
            self.assertFalse(reused)
            status, _, reused = tls_get(port, ctx, "renewed-under-new", session=renewed)
            self.assertEqual(status, 200)
            self.assertTrue(reused, "the ticket renewed under the first file did not resume")
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main()
