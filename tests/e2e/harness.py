"""Test harness: runs the real certgate binary on loopback ports and talks to it with real
TLS clients (Python's ssl module, i.e. OpenSSL) over real sockets."""
import atexit
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import textwrap
import time
import glob

CERTGATE = os.environ.get("CERTGATE", "build/certgate")
PKI = os.environ.get("TEST_PKI", "build/test-pki")


def pki(name):
    return os.path.join(PKI, name)


_PORT_DIR = os.path.join(tempfile.gettempdir(), "certgate-test-ports")
_reserved = []


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _reserve(port):
    """True when this process now owns `port` for the whole run: a file per port, created
    exclusively, whose owner's pid is checked so a crashed run's ports come back."""
    path = os.path.join(_PORT_DIR, str(port))
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path) as f:
                    owner = int(f.read() or "0")
                if owner:
                    os.kill(owner, 0)
                    return False
            except ProcessLookupError:
                pass
            except (OSError, ValueError):
                return False
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        _reserved.append(path)
        return True
    return False


@atexit.register
def _release_ports():
    for path in _reserved:
        try:
            os.unlink(path)
        except OSError:
            pass


def free_port():
    """A loopback port for a listener the test starts later. Tests run in parallel (ctest -j) and
    many pick ports long before they bind them, so the port is (1) below the kernel's ephemeral
    range — no outbound connection of certgate's or a client's can take it meanwhile — and
    (2) reserved for this process, so no other test file of the run is handed it too."""
    os.makedirs(_PORT_DIR, exist_ok=True)
    low, high = 20000, _ephemeral_low()
    if high - low < 2000:
        low = 1024
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(500):
        port = rng.randrange(low, high)
        if not _reserve(port):
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue  # in use by something outside the tests: keep it reserved, skip it
    raise RuntimeError(f"no free loopback port in {low}..{high}")


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value (last wins)
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def code(self):
        """'403.16' as shown on the error page, or the bare status."""
        m = re.search(r"HTTP Error (\d+(?:\.\d+)?)", self.text)
        return m.group(1) if m else str(self.status)


def read_response(sock_file, head=False):
    status_line = sock_file.readline()
    if not status_line:
        raise ConnectionError("connection closed without a response")
    parts = status_line.decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers = {}
    while True:
        line = sock_file.readline().decode("latin-1")
        if line in ("\r\n", "\n", ""):
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if head or status in (204, 304) or 100 <= status < 200:
        return Response(status, headers, body)
    if "content-length" in headers:
        body = sock_file.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(sock_file.readline().split(b";")[0], 16)
            if size == 0:
                sock_file.readline()
                break
            parts.append(sock_file.read(size))
            sock_file.readline()
        body = b"".join(parts)
    return Response(status, headers, body)


def client_context(user=None, tls_version=None, cert_dir=None):
    """A client trusting the test server; `user`'s certificate (and chain) from the scenario PKI,
    or from `cert_dir`."""
    where = (lambda f: os.path.join(cert_dir, f)) if cert_dir else pki
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki("root-ca.pem"))
    ctx.check_hostname = True
    if tls_version == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if tls_version == "1.3":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if user:
        chain = where(f"{user}-chain.pem")
        ctx.load_cert_chain(chain if os.path.exists(chain) else where(f"{user}.pem"), where(f"{user}.key"))
    return ctx


class Connection:
    """One TLS (or plain) connection that can carry several requests (keep-alive)."""

    def __init__(self, port, user=None, sni="localhost", tls=True, tls_version=None, timeout=10,
                 context=None, session=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            ctx = context or client_context(user, tls_version)
            self.sock = ctx.wrap_socket(raw, server_hostname=sni, session=session)
        else:
            self.sock = raw
        self.file = self.sock.makefile("rb")
        self.sni = sni

    def request(self, path="/", method="GET", host=None, headers=None, body=None, raw=None):
        if raw is None:
            lines = [f"{method} {path} HTTP/1.1", f"Host: {host or self.sni}"]
            for k, v in (headers or {}).items():
                lines.append(f"{k}: {v}")
            if body is not None:
                lines.append(f"Content-Length: {len(body)}")
            raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
        self.sock.sendall(raw)
        return read_response(self.file, head=(method == "HEAD"))

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


def get(port, path="/", user=None, sni="localhost", tls=True, **kw):
    c = Connection(port, user=user, sni=sni, tls=tls)
    try:
        return c.request(path, **kw)
    finally:
        c.close()


def mtls_site(name, port, site_id, client_certificates):
    """The head of a [[sites]] table that requires a client certificate on 127.0.0.1:port with the
    test server certificate; `client_certificates` is the body of [sites.client_certificates]."""
    return f"""
[[sites]]
name = "{name}"
id = {site_id}
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  {client_certificates}
"""


class Server:
    """certgate serve on a generated config; `sites` is TOML text for [[sites]] tables."""

    def __init__(self, sites, server_extra="", threads=2, test_clock=False):
        self.dir = tempfile.mkdtemp(prefix="certgate-e2e-")
        # test_clock: the server's clock can be moved with shift_clock() (docs/testing.md).
        self.clock_file = os.path.join(self.dir, "clock-offset") if test_clock else None
        www = os.path.join(self.dir, "www")
        os.makedirs(os.path.join(www, "public"))
        os.makedirs(os.path.join(www, "accept"))
        os.makedirs(os.path.join(www, "admin"))
        for d in ("", "public", "accept", "admin"):
            with open(os.path.join(www, d, "index.html"), "w") as f:
                f.write(f"<h1>hello from /{d}</h1>\n")
        with open(os.path.join(www, "data.txt"), "w") as f:
            f.write("0123456789")
        self.config = os.path.join(self.dir, "certgate.toml")
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(f"""\
                [server]
                log_dir = "logs"
                threads = {threads}
                detailed_errors = "always"
                {server_extra}
                """))
            f.write(textwrap.dedent(sites).replace("@PKI@", PKI))
        self.proc = None

    def edit_config(self, old, new):
        with open(self.config) as f:
            text = f.read()
        assert old in text, old
        with open(self.config, "w") as f:
            f.write(text.replace(old, new))

    def start(self):
        self.stderr = open(os.path.join(self.dir, "stderr.log"), "w+")
        env = dict(os.environ, CERTGATE_TEST_CLOCK_FILE=self.clock_file) if self.clock_file else None
        self.proc = subprocess.Popen([CERTGATE, "serve", "-c", self.config], cwd=self.dir,
                                     stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        with open(self.config) as f:
            ports = set(int(p) for p in re.findall(r'listen = "[^"]*:(\d+)"', f.read()))
        deadline = time.time() + 10
        for port in ports:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("certgate exited: " + self.stderr_text())
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError("certgate did not listen on %d" % port)
                    time.sleep(0.05)
        return self

    def shift_clock(self, seconds):
        """Moves the server's clock `seconds` ahead of the system's (0: back to it), and waits
        until the server says it has taken the offset."""
        assert self.clock_file, "start the Server with test_clock=True"
        said = f"test clock: offset now {seconds} s"
        before = self.stderr_text().count(said)
        with open(self.clock_file, "w") as f:
            f.write(str(seconds))
        deadline = time.time() + 5
        while self.stderr_text().count(said) == before:
            if time.time() > deadline:
                raise AssertionError("the server did not take the clock offset: " + self.stderr_text())
            time.sleep(0.05)

    def stderr_text(self):
        self.stderr.flush()
        with open(os.path.join(self.dir, "stderr.log")) as f:
            return f.read()

    def stop(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("certgate did not stop within %ds of SIGTERM" % timeout)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.stderr.close()
        return self.proc.returncode

    def log_lines(self, site_id=1):
        lines = []
        for path in sorted(glob.glob(os.path.join(self.dir, "logs", f"W3SVC{site_id}", "u_ex*.log"))):
            with open(path, "rb") as f:
                lines += f.read().decode().split("\r\n")
        return [l for l in lines if l]

    def log_entry(self, query, site_id=1, timeout=3.0):
        """The W3C line whose cs-uri-query is `query`, as a dict of field -> value."""
        deadline = time.time() + timeout
        while True:
            fields = None
            for line in self.log_lines(site_id):
                if line.startswith("#Fields: "):
                    fields = line[len("#Fields: "):].split(" ")
                elif not line.startswith("#") and fields:
                    values = line.split(" ")
                    entry = dict(zip(fields, values))
                    if entry.get("cs-uri-query") == query:
                        return entry
            if time.time() > deadline:
                raise AssertionError(f"no W3C line with query {query!r}; log: {self.log_lines(site_id)}")
            time.sleep(0.1)


def run(argv, **kw):
    return subprocess.run([CERTGATE] + argv, capture_output=True, text=True, timeout=60, **kw)
