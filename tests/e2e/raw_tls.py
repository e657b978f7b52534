"""A hand-built TLS 1.2 client that sends arbitrary bytes as its Certificate message.
In TLS 1.2 the client's Certificate travels in plaintext right after ServerHelloDone, so no key
exchange is needed to put garbage where a certificate chain belongs."""
import os
import socket
import struct


def _ext(kind, body):
    return struct.pack("!HH", kind, len(body)) + body


def client_hello(sni):
    name = sni.encode()
    exts = b"".join([
        _ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name),       # server_name
        _ext(10, struct.pack("!HHH", 4, 23, 29)),                               # groups: P-256, X25519
        _ext(11, b"\x01\x00"),                                                  # ec_point_formats
        _ext(13, struct.pack("!HHHH", 6, 0x0403, 0x0804, 0x0401)),              # signature_algorithms
    ])
    suites = struct.pack("!HHHH", 6, 0xC02B, 0xC02F, 0xC02C)  # ECDHE-(ECDSA|RSA)-AES-GCM
    body = b"\x03\x03" + os.urandom(32) + b"\x00" + suites + b"\x01\x00" + struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def _read_record(sock):
    head = b""
    while len(head) < 5:
        chunk = sock.recv(5 - len(head))
        if not chunk:
            return None, None
        head += chunk
    kind, _, length = struct.unpack("!BHH", head)
    data = b""
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            return None, None
        data += chunk
    return kind, data


def send_garbage_certificate(port, sni, garbage, timeout=5):
    """Returns what the server did after the garbage Certificate: 'alert:<desc>' or 'closed'."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(client_hello(sni))
        buf = b""
        while True:  # collect handshake messages until ServerHelloDone (type 14)
            kind, data = _read_record(sock)
            if kind is None:
                return "closed before ServerHelloDone"
            if kind == 21:
                return "alert before ServerHelloDone: %d" % data[1]
            buf += data
            done = False
            while len(buf) >= 4:
                mtype = buf[0]
                mlen = int.from_bytes(buf[1:4], "big")
                if len(buf) < 4 + mlen:
                    break
                buf = buf[4 + mlen:]
                done = done or mtype == 14
            if done:
                break
        entry = struct.pack("!I", len(garbage))[1:] + garbage
        cert_list = struct.pack("!I", len(entry))[1:] + entry
        msg = b"\x0b" + struct.pack("!I", len(cert_list))[1:] + cert_list
        sock.sendall(b"\x16\x03\x03" + struct.pack("!H", len(msg)) + msg)
        kind, data = _read_record(sock)
        if kind == 21:
            return "alert:%d" % data[1]
        return "closed" if kind is None else "record:%d" % kind
    finally:
        sock.close()
