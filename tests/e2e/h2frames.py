"""A small HTTP/2 client for attack tests: raw frames over TLS with ALPN h2, and an HPACK
encoder for literal fields (no library: the tests must be able to send what no well-behaved
client would). Only what the server sends back is parsed as frames; header blocks are not
decoded (the W3C line says what the server answered)."""
import socket
import ssl
import struct

from harness import client_context

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM, HTTP_1_1_REQUIRED = 0, 1, 2, 7, 8, 11, 13


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def integer(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name, value, index=False):
    """A literal field with a literal name: without indexing, or added to the dynamic table."""
    name, value = name.encode(), value.encode()
    head = b"\x40" if index else b"\x00"
    return head + integer(len(name), 7) + name + integer(len(value), 7) + value


def request_block(path, authority="localhost", method="GET", extra=b""):
    return (literal(":method", method) + literal(":scheme", "https") + literal(":path", path) +
            literal(":authority", authority) + extra)


class Client:
    def __init__(self, port, user=None, sni="localhost", timeout=10, rcvbuf=None):
        """`rcvbuf`: a small receive buffer, so that a client that does not read stalls the
        server's writes after little data."""
        ctx = client_context(user)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(timeout)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.connect(("127.0.0.1", port))
        self.sock = ctx.wrap_socket(raw, server_hostname=sni)
        assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        self.buf = b""
        self.send(PREFACE + frame(SETTINGS, 0, 0))

    def send(self, data):
        self.sock.sendall(data)

    def headers(self, stream, block, end_stream=True):
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream, block))

    def get(self, stream, path, **kw):
        self.headers(stream, request_block(path, **kw))

    def read_frame(self):
        """(type, flags, stream, payload), or None at the end of the connection."""
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        length = int.from_bytes(self.buf[:3], "big")
        ftype, flags = self.buf[3], self.buf[4]
        stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload = self.buf[9:9 + length]
        self.buf = self.buf[9 + length:]
        if ftype == SETTINGS and not flags & ACK:
            try:
                self.send(frame(SETTINGS, ACK, 0))
            except OSError:
                pass
        return ftype, flags, stream, payload

    def frames_until(self, predicate):
        """Frames up to and including the first that `predicate` accepts (None: the end)."""
        seen = []
        while True:
            f = self.read_frame()
            seen.append(f)
            if f is None or predicate(f):
                return seen

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def goaway_code(payload):
    return int.from_bytes(payload[4:8], "big")


def goaway_last_stream(payload):
    return int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
