"""Hostile pass over the stash BIO (src/tls/stream.*: an idle connection receives the next bytes
into 1 KB of its own, OpenSSL reads the stash first, then the socket) and the record-cipher
ENGINE (src/tls/record_ciphers.*: libssl's AES-GCM and ChaCha20-Poly1305 through OpenSSL's
built-in legacy EVP ciphers), on the real binary over real sockets.

The client side is Python's ssl over memory BIOs where the test must choose how the bytes become
TLS records and TCP segments (1-byte records, two requests in one record, a record cut in two),
and Python's ssl with a few libssl calls through ctypes where it has no API: the TLS 1.3 cipher
suites (SSL_CTX_set_ciphersuites) and KeyUpdate (SSL_key_update). Every such call is checked
(the suite actually negotiated, the KeyUpdate actually seen), so a wrong pointer fails the test
instead of passing it vacuously."""
import base64
import ctypes
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))

from harness import Connection, Server, client_context, free_port, read_response  # noqa: E402
from listeners import ConnectionServer, answer, read_request  # noqa: E402

P = free_port()      # TLS, HTTP/1.1 (and h2 by ALPN), session cache
H2 = free_port()     # TLS, h2 only
T = free_port()      # TLS, session tickets (second server)
OD = free_port()     # on-demand client certificate (PHA / TLS 1.2 renegotiation)
BACKEND = free_port()

SITES = f"""
[[sites]]
name = "Stash"
id = 1
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [[sites.bindings]]
  listen = "127.0.0.1:{H2}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  protocols = ["h2"]
  [[sites.locations]]
  path = "/echo"
  backend = "http://127.0.0.1:{BACKEND}"
  [sites.log]
  fields = ["cs-method", "cs-uri-stem", "cs-uri-query", "sc-status", "sc-substatus", "cs-username", "cs-version"]

[[sites]]
name = "Demand"
id = 2
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{OD}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  client_certificate = "on-demand"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  revocation = "off"
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [sites.log]
  fields = ["cs-method", "cs-uri-stem", "cs-uri-query", "sc-status", "sc-substatus", "cs-username", "cs-version"]
"""

TICKET_SITES = f"""
[[sites]]
name = "Tickets"
id = 1
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{T}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
"""

LIMITS = """
max_header_bytes = 65535
max_body_bytes = 1048576
keepalive_timeout_ms = 4000
header_timeout_ms = 1500
"""

BIG = 1_000_003  # odd size: the last record is short
BIG_DATA = os.urandom(BIG)
BIG_SHA = hashlib.sha256(BIG_DATA).hexdigest()
UPLOAD = os.urandom(300_001)

TLS13_SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
TLS12_SUITES = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"]

server = None
tickets = None
backend = None

# ---- libssl through ctypes: what Python's ssl module has no API for ---------------------------
_libssl = ctypes.CDLL("libssl.so.3")
_libssl.SSL_CTX_set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_libssl.SSL_key_update.argtypes = [ctypes.c_void_p, ctypes.c_int]
_libssl.SSL_do_handshake.argtypes = [ctypes.c_void_p]
_libssl.SSL_get_SSL_CTX.argtypes = [ctypes.c_void_p]
_libssl.SSL_get_SSL_CTX.restype = ctypes.c_void_p


def _ctx_ptr(ctx):
    # CPython's PySSLContext: PyObject_HEAD, then SSL_CTX *ctx.
    return ctypes.c_void_p.from_address(id(ctx) + 16).value


def _ssl_ptr(sslobj, ctx):
    # CPython's PySSLSocket: PyObject_HEAD, PyObject *Socket, then SSL *ssl. Checked against the
    # context it was made from, so a layout change fails here rather than corrupting memory.
    ptr = ctypes.c_void_p.from_address(id(sslobj) + 24).value
    assert _libssl.SSL_get_SSL_CTX(ptr) == _ctx_ptr(ctx), "PySSLSocket layout changed"
    return ptr


def suite_context(suite, user=None):
    """A client offering exactly one cipher suite (TLS 1.3 name or TLS 1.2 OpenSSL name)."""
    if suite.startswith("TLS_"):
        ctx = client_context(user, "1.3")
        assert _libssl.SSL_CTX_set_ciphersuites(_ctx_ptr(ctx), suite.encode()) == 1
    else:
        ctx = client_context(user, "1.2")
        ctx.set_ciphers(suite)
    return ctx


# ---- a client that decides how bytes become records and segments ------------------------------
class Raw:
    """TLS over memory BIOs: records() turns plaintext chunks into records (one record per chunk),
    the caller sends the bytes however it likes; response() reads one HTTP/1.1 answer."""

    def __init__(self, port, ctx=None, alpn=None, timeout=5):
        self.ctx = ctx or client_context()
        if alpn:
            self.ctx.set_alpn_protocols(alpn)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = self.ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.plain = b""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self._fill()
        self.flush()

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            self.inc.write_eof()
            raise ConnectionError("server closed")
        self.inc.write(data)

    def records(self, *chunks):
        for c in chunks:
            self.obj.write(c)
        return self.out.read()

    def read_plain(self, n=65536):
        while True:
            try:
                data = self.obj.read(n)
                self.flush()
                return data
            except ssl.SSLWantReadError:
                self.flush()
                self._fill()

    def response(self):
        while b"\r\n\r\n" not in self.plain:
            self.plain += self.read_plain()
        head, _, rest = self.plain.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        length = int(headers["content-length"])
        while len(rest) < length:
            rest += self.read_plain()
        self.plain = rest[length:]
        return status, headers, rest[:length]

    def closed_within(self, seconds):
        """True when the server ends the connection (EOF, reset, or an alert) within `seconds`."""
        self.sock.settimeout(seconds)
        deadline = time.time() + seconds
        try:
            while time.time() < deadline:
                if not self.sock.recv(65536):
                    return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        return False

    def close(self):
        self.sock.close()


def get_raw(path, host="localhost"):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class EchoBackend(ConnectionServer):
    """Answers each request with its line, headers and the body's length and SHA-256, as JSON;
    remembers every request line it was sent."""

    def __init__(self, port):
        super().__init__(port)
        self.seen = []

    def serve(self, c):
        f = c.makefile("rb")
        try:
            while True:
                line, headers, body = read_request(f)
                if line is None:
                    return
                self.seen.append(line)
                if headers.get("upgrade", "").lower() == "websocket":
                    return self.tunnel(c, f, headers)
                c.sendall(answer(json.dumps({"line": line, "headers": headers, "len": len(body),
                                             "sha": hashlib.sha256(body).hexdigest()}).encode()))
        except OSError:
            return


    @staticmethod
    def tunnel(c, f, headers):
        # 101, then every byte back as it came (what the buffered reader already holds first).
        key = headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
        c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        try:
            while True:
                data = f.read1(65536)
                if not data:
                    return
                c.sendall(data)
        except OSError:
            return


class TamperRelay(threading.Thread):
    """A TCP relay for one connection that flips one byte (at `offset` from the record's end) of
    the first client-to-server application-data record longer than 300 bytes."""

    def __init__(self, target, offset):
        super().__init__(daemon=True)
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.target, self.offset = target, offset
        self.flipped = False

    def run(self):
        c, _ = self.srv.accept()
        self.srv.close()
        s = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._pipe, args=(s, c), daemon=True).start()
        try:
            self._forward(c, s)
        finally:
            time.sleep(0.5)  # the server's alert may still be on its way back
            c.close()
            s.close()

    def _forward(self, c, s):
        buf = b""
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    s.shutdown(socket.SHUT_WR)
                    return
                buf += data
                while len(buf) >= 5:
                    kind, _, length = struct.unpack("!BHH", buf[:5])
                    if len(buf) < 5 + length:
                        break
                    rec, buf = bytearray(buf[:5 + length]), buf[5 + length:]
                    if kind == 23 and length > 300 and not self.flipped:
                        rec[len(rec) - self.offset] ^= 0x01
                        self.flipped = True
                    s.sendall(bytes(rec))
        except OSError:
            return

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def setUpModule():
    global server, tickets, backend
    backend = EchoBackend(BACKEND)
    backend.start()
    server = Server(SITES, server_extra=LIMITS, threads=1)
    with open(os.path.join(server.dir, "www", "big.bin"), "wb") as f:
        f.write(BIG_DATA)
    server.start()
    tickets = Server(TICKET_SITES, server_extra='session_resumption = "tickets"', threads=1).start()


def tearDownModule():
    rc = server.stop()
    tickets.stop()
    backend.stop()
    assert rc == 0, f"certgate exited with {rc}: {server.stderr_text()[-2000:]}"


def alive(test):
    test.assertIsNone(server.proc.poll(), server.stderr_text()[-2000:])
    test.assertEqual(Connection(P).request("/data.txt").body, b"0123456789")


# ---- the stash: records and segments of every shape ------------------------------------------
class StashShapes(unittest.TestCase):
    def test_head_larger_than_the_stash_after_an_idle_wait(self):
        # The idle receive takes the first 1 KB of a 40 KB head (three records); the rest comes
        # from the socket. The backend sees the header value byte for byte.
        c = Connection(P)
        self.assertEqual(c.request("/data.txt").body, b"0123456789")
        time.sleep(0.1)  # idle: the next bytes land in the stash
        for size in (1500, 40_000):
            value = (hashlib.sha256(str(size).encode()).hexdigest() * (size // 64 + 1))[:size]
            r = c.request(f"/echo/big-head?{size}", headers={"X-Big": value})
            self.assertEqual(r.status, 200, r.text[:300])
            self.assertEqual(json.loads(r.body)["headers"]["x-big"], value)
        c.close()

    def test_body_larger_than_the_stash_on_keep_alive(self):
        c = Connection(P)
        for i in range(3):
            time.sleep(0.05)
            r = c.request(f"/echo/body?{i}", method="POST", body=UPLOAD)
            got = json.loads(r.body)
            self.assertEqual((got["len"], got["sha"]), (len(UPLOAD), hashlib.sha256(UPLOAD).hexdigest()))
        c.close()

    def test_one_byte_records_in_one_segment(self):
        # ~100 records of one byte each (more than the stash holds), sent in one write.
        raw = Raw(P)
        req = get_raw("/data.txt?one-byte-records-" + "x" * 40)
        raw.sock.sendall(raw.records(*[req[i:i + 1] for i in range(len(req))]))
        self.assertEqual(raw.response()[2], b"0123456789")
        time.sleep(0.1)
        raw.sock.sendall(raw.records(*[req[i:i + 1] for i in range(len(req))]))
        self.assertEqual(raw.response()[2], b"0123456789")
        raw.close()

    def test_request_record_in_one_byte_tcp_writes(self):
        raw = Raw(P)
        for _ in range(2):
            wire = raw.records(get_raw("/data.txt?slow"))
            for i in range(len(wire)):
                raw.sock.send(wire[i:i + 1])
                time.sleep(0.001)
            self.assertEqual(raw.response()[2], b"0123456789")
        raw.close()

    def test_one_byte_records_in_one_byte_tcp_writes(self):
        raw = Raw(P)
        req = get_raw("/data.txt?slowest")
        for i in range(len(req)):
            raw.sock.sendall(raw.records(req[i:i + 1]))
            time.sleep(0.001)
        self.assertEqual(raw.response()[2], b"0123456789")
        raw.close()

    def test_two_requests_in_one_record(self):
        raw = Raw(P)
        time.sleep(0.1)
        raw.sock.sendall(raw.records(get_raw("/data.txt?pipe1") + get_raw("/index.html?pipe1")))
        self.assertEqual(raw.response()[2], b"0123456789")
        self.assertIn(b"hello from /", raw.response()[2])
        raw.close()

    def test_two_records_in_one_stash_fill(self):
        raw = Raw(P)
        raw.sock.sendall(raw.records(get_raw("/data.txt?first")))
        self.assertEqual(raw.response()[2], b"0123456789")
        time.sleep(0.1)  # idle: both records arrive in one receive into the stash
        raw.sock.sendall(raw.records(get_raw("/index.html?pipe2"), get_raw("/data.txt?pipe2")))
        self.assertIn(b"hello from /", raw.response()[2])
        self.assertEqual(raw.response()[2], b"0123456789")
        raw.close()

    def test_record_split_across_stash_fills(self):
        # A record cut after its header, then after half its body, with idle gaps between.
        raw = Raw(P)
        wire = raw.records(get_raw("/data.txt?split"))
        for part in (wire[:3], wire[3:40], wire[40:]):
            raw.sock.sendall(part)
            time.sleep(0.05)
        self.assertEqual(raw.response()[2], b"0123456789")
        raw.close()

    def test_half_close_after_the_request_is_still_answered(self):
        raw = Raw(P)
        raw.sock.sendall(raw.records(get_raw("/data.txt?halfclose")))
        raw.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(raw.response()[2], b"0123456789")
        self.assertTrue(raw.closed_within(3))
        raw.close()

    def test_request_and_fin_in_one_segment_is_answered_then_closed_at_once(self):
        raw = Raw(P)
        raw.sock.sendall(raw.records(get_raw("/data.txt?warm")))
        self.assertEqual(raw.response()[2], b"0123456789")
        time.sleep(0.1)
        wire = raw.records(get_raw("/data.txt?with-fin"))
        raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)  # data and FIN together
        raw.sock.sendall(wire)
        raw.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(raw.response()[2], b"0123456789")
        self.assertTrue(raw.closed_within(2), "the end of the stream went unnoticed")
        raw.close()

    def test_pipelined_request_behind_an_urgent_byte_is_answered(self):
        raw = Raw(P)
        raw.sock.sendall(raw.records(get_raw("/data.txt?warm")))
        raw.response()
        time.sleep(0.1)
        a, b = raw.records(get_raw("/data.txt?urgA")), raw.records(get_raw("/index.html?urgB"))
        raw.sock.sendall(a)
        raw.sock.send(b"\x00", socket.MSG_OOB)
        raw.sock.sendall(b)
        self.assertEqual(raw.response()[2], b"0123456789")
        raw.sock.settimeout(2)
        self.assertIn(b"hello from /", raw.response()[2])
        raw.close()

    def test_close_notify_while_idle_ends_the_connection(self):
        raw = Raw(P)
        raw.sock.sendall(raw.records(get_raw("/data.txt?cn")))
        self.assertEqual(raw.response()[2], b"0123456789")
        time.sleep(0.1)
        try:
            raw.obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        raw.flush()
        self.assertTrue(raw.closed_within(3))
        raw.close()
        alive(self)

    def test_eof_with_a_partial_record_in_the_stash(self):
        raw = Raw(P)
        wire = raw.records(get_raw("/data.txt?eof-partial"))
        raw.sock.sendall(wire[:20])
        raw.sock.shutdown(socket.SHUT_WR)
        self.assertTrue(raw.closed_within(3))
        raw.close()
        alive(self)

    def test_reset_mid_request(self):
        for cut in (3, 30):
            raw = Raw(P)
            raw.sock.sendall(raw.records(get_raw("/data.txt?rst"))[:cut])
            time.sleep(0.05)
            raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
        alive(self)

    def test_partial_record_left_idle_is_closed_by_the_timeout(self):
        raw = Raw(P)
        raw.sock.sendall(raw.records(get_raw("/data.txt?idle-partial")))
        self.assertEqual(raw.response()[2], b"0123456789")
        raw.sock.sendall(raw.records(get_raw("/data.txt?never"))[:4])
        started = time.time()
        self.assertTrue(raw.closed_within(8))
        self.assertLess(time.time() - started, 7)
        raw.close()


class Tunnel(unittest.TestCase):
    def test_websocket_tunnel_bytes_through_the_stash(self):
        # The upgrade request and the first tunnel bytes in one record (what the parser buffered
        # goes to the backend after the 101), then 1-byte records in one segment, then a chunk
        # several records long, after idle waits: every byte comes back, in order.
        raw = Raw(P)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET /echo/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        raw.sock.sendall(raw.records(head + b"early|"))
        while b"\r\n\r\n" not in raw.plain:
            raw.plain += raw.read_plain()
        status, _, rest = raw.plain.partition(b"\r\n\r\n")
        self.assertIn(b" 101 ", status.split(b"\r\n")[0])
        sent = b"early|"
        got = rest
        time.sleep(0.05)
        small = b"one-byte-records|"
        raw.sock.sendall(raw.records(*[small[i:i + 1] for i in range(len(small))]))
        sent += small
        time.sleep(0.05)
        big = os.urandom(50_000)
        raw.sock.sendall(raw.records(big))
        sent += big
        while len(got) < len(sent):
            got += raw.read_plain()
        self.assertEqual(got, sent)
        raw.close()


    def test_key_update_inside_a_tunnel(self):
        # KeyUpdates (each asking for the server's) between tunnel chunks, each chunk read back
        # before the next. (Not while the server's write to the client is blocked: OpenSSL 3.0
        # then fails the connection with "bad length", openssl/openssl#8677, not certgate's.)
        ctx = client_context(tls_version="1.3")
        seen = []
        ctx._msg_callback = lambda conn, d, v, ct, mt, data: seen.append((d, mt))
        c = Connection(P, context=ctx)
        s = _ssl_ptr(c.sock._sslobj, ctx)
        key = base64.b64encode(os.urandom(16)).decode()
        c.sock.sendall((f"GET /echo/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.assertEqual(read_response(c.file, head=True).status, 101)
        for i in range(8):
            self.assertEqual(_libssl.SSL_key_update(s, 1), 1)
            chunk = os.urandom(50_000)
            c.sock.sendall(chunk)
            self.assertEqual(c.file.read(len(chunk)), chunk)
        self.assertEqual(sum(1 for d, m in seen if d == "read" and m == ssl._TLSMessageType.KEY_UPDATE), 8)
        c.close()


# ---- HTTP/2 over the stash --------------------------------------------------------------------
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def h2literal(name, value):
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def h2get(stream, path):
    block = (h2literal(":method", "GET") + h2literal(":scheme", "https") + h2literal(":path", path) +
             h2literal(":authority", "localhost"))
    return h2frame(1, 0x5, stream, block)  # HEADERS, END_STREAM | END_HEADERS


def h2_body(raw, stream):
    """The DATA of `stream` up to END_STREAM (frames of other kinds are skipped)."""
    buf, body = b"", b""
    while True:
        while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
            buf += raw.read_plain()
        length = int.from_bytes(buf[:3], "big")
        ftype, flags, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        payload, buf = buf[9:9 + length], buf[9 + length:]
        if ftype == 7:
            raise AssertionError(f"GOAWAY {payload!r}")
        if sid == stream and ftype == 0:
            body += payload
        if sid == stream and ftype in (0, 1) and flags & 0x1:
            return body


class Http2(unittest.TestCase):
    def test_preface_and_request_in_the_first_stash_fill(self):
        raw = Raw(H2, alpn=["h2"])
        self.assertEqual(raw.obj.selected_alpn_protocol(), "h2")
        time.sleep(0.1)
        raw.sock.sendall(raw.records(PREFACE + h2frame(4, 0, 0) + h2get(1, "/data.txt")))
        self.assertEqual(h2_body(raw, 1), b"0123456789")
        # Then frames as 1-byte records, all in one segment.
        frames = h2get(3, "/data.txt")
        raw.sock.sendall(raw.records(*[frames[i:i + 1] for i in range(len(frames))]))
        self.assertEqual(h2_body(raw, 3), b"0123456789")
        raw.close()

    def test_partial_record_on_an_idle_h2_connection_does_not_spin(self):
        # A record's first bytes and no more: OpenSSL holds them (SSL_has_pending), so a readable
        # wait that trusts SSL_has_pending completes at once, the read finds no whole record, and
        # the connection loops through the event loop until its idle timeout: one client, one
        # core. The wait must go to the socket instead.
        raw = Raw(H2, alpn=["h2"])
        raw.sock.sendall(raw.records(PREFACE + h2frame(4, 0, 0) + h2get(1, "/data.txt")))
        self.assertEqual(h2_body(raw, 1), b"0123456789")
        rest = raw.records(h2get(3, "/data.txt"))
        raw.sock.sendall(rest[:7])
        time.sleep(0.2)
        before = cpu_seconds(server.proc.pid)
        time.sleep(1.0)
        used = cpu_seconds(server.proc.pid) - before
        self.assertLess(used, 0.3, f"the server used {used:.2f} s of CPU in 1 s with one idle h2 connection")
        # And the record, once complete, is read and answered.
        raw.sock.sendall(rest[7:])
        self.assertEqual(h2_body(raw, 3), b"0123456789")
        raw.close()

    def test_partial_record_after_a_request_on_http11_does_not_spin(self):
        raw = Raw(P)
        req = raw.records(get_raw("/data.txt?spin1"))
        nxt = raw.records(get_raw("/data.txt?spin2"))
        raw.sock.sendall(req + nxt[:7])
        self.assertEqual(raw.response()[2], b"0123456789")
        time.sleep(0.2)
        before = cpu_seconds(server.proc.pid)
        time.sleep(1.0)
        used = cpu_seconds(server.proc.pid) - before
        self.assertLess(used, 0.3, f"the server used {used:.2f} s of CPU in 1 s")
        raw.sock.sendall(nxt[7:])
        self.assertEqual(raw.response()[2], b"0123456789")
        raw.close()


# ---- TLS 1.3 KeyUpdate ------------------------------------------------------------------------
class KeyUpdate(unittest.TestCase):
    def connect(self):
        ctx = client_context(tls_version="1.3")
        self.seen = []
        ctx._msg_callback = lambda conn, direction, version, ctype, mtype, data: self.seen.append(
            (direction, mtype))
        c = Connection(P, context=ctx)
        return c, _ssl_ptr(c.sock._sslobj, ctx)

    def key_updates_read(self):
        return sum(1 for d, m in self.seen if d == "read" and m == ssl._TLSMessageType.KEY_UPDATE)

    def key_updates_written(self):
        return sum(1 for d, m in self.seen if d == "write" and m == ssl._TLSMessageType.KEY_UPDATE)

    def test_key_update_alone_while_idle_then_requests(self):
        c, s = self.connect()
        self.assertEqual(c.request("/data.txt?ku0").body, b"0123456789")
        for i in range(10):
            requested = i % 2
            self.assertEqual(_libssl.SSL_key_update(s, requested), 1)
            self.assertEqual(_libssl.SSL_do_handshake(s), 1)  # sends the KeyUpdate alone
            time.sleep(0.02)  # it lands in the idle connection's stash
            r = c.request(f"/data.txt?ku{i}")
            self.assertEqual(r.body, b"0123456789")
        self.assertEqual(self.key_updates_written(), 10)
        # Five of them asked the server to update its keys too: it did, and the answers after
        # each were read with the new keys.
        self.assertEqual(self.key_updates_read(), 5)
        c.close()

    def test_key_update_and_request_in_one_segment_over_many_requests(self):
        c, s = self.connect()
        for i in range(30):
            self.assertEqual(_libssl.SSL_key_update(s, 1), 1)
            r = c.request(f"/data.txt?kur{i}")  # the KeyUpdate goes out just before the request
            self.assertEqual(r.body, b"0123456789")
        self.assertEqual(self.key_updates_written(), 30)
        self.assertEqual(self.key_updates_read(), 30)
        c.close()

    def test_key_update_mid_download(self):
        c, s = self.connect()
        c.sock.sendall(get_raw("/big.bin?ku-big"))
        head = c.file.readline()
        self.assertIn(b"200", head)
        while c.file.readline() not in (b"\r\n", b""):
            pass
        got = c.file.read(100_000)
        self.assertEqual(_libssl.SSL_key_update(s, 1), 1)
        self.assertEqual(_libssl.SSL_do_handshake(s), 1)
        got += c.file.read(BIG - len(got))
        self.assertEqual(hashlib.sha256(got).hexdigest(), BIG_SHA)
        self.assertEqual(c.request("/data.txt?after-ku-big").body, b"0123456789")
        c.close()


# ---- every record cipher: large transfers both ways, resumption, tampering ---------------------
class Suites(unittest.TestCase):
    def transfer(self, suite, port=P):
        ctx = suite_context(suite)
        c = Connection(port, context=ctx)
        self.assertEqual(c.sock.cipher()[0], suite)
        r = c.request(f"/big.bin?{suite}")
        self.assertEqual((r.status, len(r.body)), (200, BIG))
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), BIG_SHA, suite)
        r = c.request(f"/echo/up?{suite}", method="POST", body=UPLOAD)
        got = json.loads(r.body)
        self.assertEqual((got["len"], got["sha"]), (len(UPLOAD), hashlib.sha256(UPLOAD).hexdigest()), suite)
        session = c.sock.session
        c.close()
        return ctx, session

    def resume(self, suite, port):
        ctx = suite_context(suite)
        c = Connection(port, context=ctx)
        self.assertEqual(c.sock.cipher()[0], suite)
        self.assertEqual(c.request(f"/data.txt?{suite}").body, b"0123456789")
        session = c.sock.session
        c.close()
        self.assertIsNotNone(session)
        for _ in range(2):
            c = Connection(port, context=ctx, session=session)
            self.assertTrue(c.sock.session_reused, f"{suite} on {port}")
            self.assertEqual(c.sock.cipher()[0], suite)
            self.assertEqual(c.request(f"/data.txt?resumed-{suite}").body, b"0123456789")
            session = c.sock.session
            c.close()

    def test_large_download_and_upload_on_every_suite(self):
        for suite in TLS13_SUITES + TLS12_SUITES:
            with self.subTest(suite=suite):
                self.transfer(suite)

    def test_resumption_on_every_suite_cache_and_tickets(self):
        for suite in TLS13_SUITES + TLS12_SUITES:
            for port in (P, T):
                with self.subTest(suite=suite, port="cache" if port == P else "tickets"):
                    self.resume(suite, port)

    def test_tampered_record_ends_the_connection_with_bad_record_mac(self):
        for suite in TLS13_SUITES + TLS12_SUITES:
            for where, offset in (("tag", 1), ("ciphertext", 200)):
                with self.subTest(suite=suite, where=where):
                    relay = TamperRelay(P, offset)
                    relay.start()
                    raw = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
                    sock = suite_context(suite).wrap_socket(raw, server_hostname="localhost")
                    self.assertEqual(sock.cipher()[0], suite)
                    marker = f"tampered-{suite}-{where}"
                    sock.sendall(get_raw(f"/echo/{marker}?" + "p" * 400))
                    with self.assertRaises((ssl.SSLError, ConnectionError)) as caught:
                        data = sock.recv(65536)
                        if not data:
                            raise ConnectionError("closed without an alert")
                        self.fail(f"{suite}: the server answered a tampered record: {data[:100]!r}")
                    self.assertTrue(relay.flipped)
                    self.assertIn("BAD_RECORD_MAC", str(caught.exception).upper(), suite)
                    sock.close()
                    time.sleep(0.05)
                    self.assertFalse([l for l in backend.seen if marker in l], backend.seen[-3:])
        self.assertFalse([l for l in server.log_lines() if "tampered-" in l])
        alive(self)


# ---- on-demand certificates over keep-alive ---------------------------------------------------
class OnDemand(unittest.TestCase):
    def test_pha_and_renegotiation_after_an_idle_wait(self):
        for version in ("1.3", "1.2"):
            with self.subTest(version=version):
                ctx = client_context("alice", version)
                ctx.post_handshake_auth = True
                c = Connection(OD, context=ctx)
                self.assertEqual(c.request(f"/public/?od-{version}").status, 200)
                time.sleep(0.1)
                r = c.request(f"/admin/?od-{version}")
                self.assertEqual(r.status, 200, r.text[:400])
                time.sleep(0.1)
                self.assertEqual(c.request(f"/admin/?od-again-{version}").status, 200)
                self.assertEqual(c.request(f"/data.txt?od-after-{version}").body, b"0123456789")
                c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
