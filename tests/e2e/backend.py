"""A backend for the proxy tests, run as its own process: echoes the request head as JSON,
hashes uploads as they stream, streams large downloads, stalls on /slow, echoes WebSocket frames,
and counts the connections it accepted (GET /stats)."""
import base64
import hashlib
import http.server
import json
import os
import socketserver
import sys
import threading
import time

CONNECTIONS = 0
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global CONNECTIONS
        with LOCK:
            CONNECTIONS += 1
        super().setup()

    def log_message(self, *args):
        pass

    def send_json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        h = hashlib.sha256()
        n = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                left = size
                while left:
                    chunk = self.rfile.read(min(left, 65536))
                    h.update(chunk)
                    n += len(chunk)
                    left -= len(chunk)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
                left -= len(chunk)
        return n, h.hexdigest()

    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(3)
            return self.send_json({"slow": True})
        if self.path.startswith("/stats"):
            return self.send_json({"connections": CONNECTIONS})
        if self.path.startswith("/big"):
            n = int(self.path.split("n=")[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = b"x" * 65536
            while n:
                part = block[: min(n, len(block))]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                n -= len(part)
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        n, digest = self.read_body()
        self.send_json({"method": "GET", "path": self.path, "headers": list(self.headers.items()),
                        "body_bytes": n})

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "1234")
        self.end_headers()

    def do_POST(self):
        n, digest = self.read_body()
        self.send_json({"method": "POST", "path": self.path, "headers": list(self.headers.items()),
                        "body_bytes": n, "sha256": digest})

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(self.rfile.read(2), "big")
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 8:
                self.wfile.write(b"\x88\x00")
                return
            reply = b"echo: " + data
            self.wfile.write(bytes([0x80 | opcode, len(reply)]) + reply)
            self.wfile.flush()


class TcpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        sock, _ = super().get_request()
        return sock, ("unix", 0)


if __name__ == "__main__":
    port, unix_path = int(sys.argv[1]), sys.argv[2]
    if len(sys.argv) > 5:  # an https listener too: PORT CERT KEY
        import ssl
        tls = TcpServer(("127.0.0.1", int(sys.argv[3])), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        threading.Thread(target=tls.serve_forever, daemon=True).start()
    tcp = TcpServer(("127.0.0.1", port), Handler)
    if os.path.exists(unix_path):
        os.unlink(unix_path)
    unix = UnixServer(unix_path, Handler)
    threading.Thread(target=unix.serve_forever, daemon=True).start()
    print("ready", flush=True)
    tcp.serve_forever()
