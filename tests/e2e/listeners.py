"""The loopback peers the e2e tests play hostile with: a listening socket (TCP on 127.0.0.1, or a
unix socket) whose accept loop hands each connection to serve() on a thread of its own, and the
backend's side of HTTP/1.1 (read one request, write one answer); and a peer that accepts and never
answers (a wedged CRL server or directory)."""
import socket
import threading


class ConnectionServer(threading.Thread):
    """Subclasses implement serve(conn); start() begins accepting, stop() ends it."""

    def __init__(self, port=None, path=None, backlog=64):
        super().__init__(daemon=True)
        if path is not None:
            self.srv = socket.socket(socket.AF_UNIX)
            self.srv.bind(path)
        else:
            self.srv = socket.socket()
            self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.srv.bind(("127.0.0.1", port))
        self.srv.listen(backlog)

    def run(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, conn):
        raise NotImplementedError

    def stop(self):
        try:
            self.srv.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        except OSError:
            pass
        self.srv.close()


def read_request(f):
    """One request from the backend's side: (request line, {lower name: value}, body), or
    (None, None, None) at the end of the connection."""
    line = f.readline()
    if not line:
        return None, None, None
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b""):
                    pass
                break
            body += f.read(size)
            f.readline()
    else:
        body = f.read(int(headers.get("content-length", "0")))
    return line.decode("latin-1").strip(), headers, body


def answer(body):
    """A complete 200 answer with `body`."""
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class Silent(ConnectionServer):
    """Accepts, reads what comes, never answers; counts the connections that sent something."""

    def __init__(self, port):
        super().__init__(port)
        self.asked = 0
        self.lock = threading.Lock()
        self.conns = []

    def serve(self, conn):
        with self.lock:
            self.conns.append(conn)
        try:
            if conn.recv(65536):
                with self.lock:
                    self.asked += 1
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def count(self):
        with self.lock:
            return self.asked

    def stop(self):
        super().stop()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass
