"""Scale-out with a real balancer: Debian's haproxy in TCP mode with send-proxy-v2 in front of two
certgate instances sharing ticket_key_files, checking each instance's /readyz. Clients
authenticate through it with their certificates; the W3C lines carry the client's own address
(a distinctive loopback source, 127.0.0.5); a session made on one instance resumes on the other;
a third instance with another key file does not resume it until a reload gives it the shared
key; a reload of one instance drops no connection; with one instance killed, requests keep
succeeding."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, client_context, free_port, read_response  # noqa: E402

CLIENT_IP = "127.0.0.5"
FRONT = free_port()
PA, PB, PC = free_port(), free_port(), free_port()
AA, AB = free_port(), free_port()
WORK = tempfile.mkdtemp(prefix="certgate-scaleout-")
SHARED_KEY = os.path.join(WORK, "shared.key")
OTHER_KEY = os.path.join(WORK, "other.key")


def site(port, proxied):
    extra = '\n  proxy_protocol = true\n  proxy_protocol_from = ["127.0.0.1"]' if proxied else ""
    return f"""
[[sites]]
name = "App"
id = 1
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"{extra}
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  revocation = "cache-only"
"""


def server_extra(key, admin=None):
    extra = f'ticket_key_files = ["{key}"]\ncache_dir = ""'
    if admin:
        extra += f'\nadmin_listen = "127.0.0.1:{admin}"'
    return extra


HAPROXY_CFG = f"""
global
  maxconn 256
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
frontend fe
  bind 127.0.0.1:{FRONT}
  default_backend certgate
backend certgate
  balance roundrobin
  option httpchk
  http-check send meth GET uri /readyz
  server a 127.0.0.1:{PA} send-proxy-v2 check port {AA} inter 200 fall 1 rise 1
  server b 127.0.0.1:{PB} send-proxy-v2 check port {AB} inter 200 fall 1 rise 1
"""

a = b = haproxy = None


def read_key(path):
    with open(path, "rb") as f:
        return f.read()


def write_key(path, data):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def setUpModule():
    global a, b, haproxy
    if not shutil.which("haproxy"):
        if os.environ.get("CI") == "true":
            raise RuntimeError("haproxy is not installed (scripts/install-deps.sh)")
        print("haproxy not installed (scripts/install-deps.sh): skipped", file=sys.stderr)
        sys.exit(77)
    write_key(SHARED_KEY, os.urandom(80))
    write_key(OTHER_KEY, os.urandom(80))
    a = Server(site(PA, True), server_extra=server_extra(SHARED_KEY, AA), threads=1).start()
    b = Server(site(PB, True), server_extra=server_extra(SHARED_KEY, AB), threads=1).start()
    cfg = os.path.join(WORK, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(HAPROXY_CFG)
    haproxy = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_until(lambda: request("/", "warmup-a")[0] == 200 and request("/", "warmup-b")[0] == 200,
               "haproxy does not serve")


def tearDownModule():
    haproxy.terminate()
    haproxy.wait(10)
    for s in (a, b):
        if s.proc.poll() is None:
            assert s.stop() == 0
        else:
            s.stderr.close()


def wait_until(cond, what, timeout=10):
    deadline = time.time() + timeout
    while True:
        try:
            if cond():
                return
        except OSError:
            pass
        if time.time() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


CONTEXT = None  # one client context: Python resumes a session only with the context that made it


class Client:
    """A TLS client from CLIENT_IP through haproxy (or straight to `port`), keep-alive."""

    def __init__(self, port=FRONT, session=None):
        global CONTEXT
        CONTEXT = CONTEXT or client_context("alice")
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(10)
        try:
            raw.bind((CLIENT_IP, 0))
            raw.connect(("127.0.0.1", port))
            self.sock = CONTEXT.wrap_socket(raw, server_hostname="localhost", session=session)
        except OSError:
            raw.close()
            raise
        self.file = self.sock.makefile("rb")

    def get(self, query):
        self.sock.sendall(f"GET /?{query} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        return read_response(self.file)

    def close(self):
        self.file.close()
        self.sock.close()


def request(path, query, **kw):
    c = Client(**kw)
    try:
        return c.get(query).status, c
    finally:
        c.close()


def instance_of(query, timeout=3):
    """(server, W3C entry) of the instance that logged `query`."""
    deadline = time.time() + timeout
    while True:
        for s in (a, b):
            for e in entries(s):
                if e.get("cs-uri-query") == query:
                    return s, e
        if time.time() > deadline:
            raise AssertionError(f"no instance logged {query!r}")
        time.sleep(0.05)


def entries(s):
    out, fields = [], None
    for line in s.log_lines(1):
        if line.startswith("#Fields: "):
            fields = line[len("#Fields: "):].split(" ")
        elif not line.startswith("#") and fields:
            out.append(dict(zip(fields, line.split(" "))))
    return out


class ScaleOut(unittest.TestCase):
    def test_1_clients_authenticate_through_haproxy_with_their_own_address(self):
        for i in range(4):  # round robin: both instances answer
            c = Client()
            r = c.get(f"auth-{i}")
            c.close()
            self.assertEqual(r.status, 200)
            _, e = instance_of(f"auth-{i}")
            self.assertEqual(e["c-ip"], CLIENT_IP)
            self.assertEqual(e["sc-status"], "200")
        self.assertEqual({id(instance_of(f"auth-{i}")[0]) for i in range(4)}, {id(a), id(b)})

    def test_2_a_session_resumes_on_the_other_instance(self):
        for attempt in range(6):
            first = Client()
            self.assertEqual(first.get(f"first-{attempt}").status, 200)
            session = first.sock.session
            first.close()
            second = Client(session=session)
            reused = second.sock.session_reused
            self.assertEqual(second.get(f"second-{attempt}").status, 200)
            second.close()
            s1, _ = instance_of(f"first-{attempt}")
            s2, e2 = instance_of(f"second-{attempt}")
            if s1 is s2:
                continue  # the balancer sent both to one instance: try again
            self.assertTrue(reused, "the ticket of one instance did not resume on the other")
            self.assertEqual(e2["c-ip"], CLIENT_IP)
            return
        self.fail("haproxy never sent two consecutive connections to different instances")

    def test_3_another_key_file_does_not_resume_until_a_reload_shares_it(self):
        c_key = os.path.join(WORK, "c.key")
        write_key(c_key, read_key(OTHER_KEY))
        other = Server(site(PC, False), server_extra=server_extra(c_key), threads=1).start()
        try:
            first = Client()
            first.get("for-c")
            session = first.sock.session
            first.close()
            direct = Client(port=PC, session=session)
            self.assertFalse(direct.sock.session_reused)  # another key: a full handshake
            self.assertEqual(direct.get("c-full").status, 200)
            direct.close()
            # The administrator installs the shared key and reloads: the same ticket resumes.
            write_key(c_key, read_key(SHARED_KEY))
            before = other.stderr_text().count("reloaded")
            other.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: other.stderr_text().count("reloaded") > before, "no reload")
            again = Client(port=PC, session=session)
            self.assertTrue(again.sock.session_reused)
            self.assertEqual(again.get("c-resumed").status, 200)
            again.close()
        finally:
            other.stop()

    def test_4_a_reload_of_one_instance_drops_no_connection(self):
        conns, where = [], set()
        for i in range(6):
            c = Client()
            self.assertEqual(c.get(f"ka-{i}").status, 200)
            conns.append((c, i))
            where.add(id(instance_of(f"ka-{i}")[0]))
        self.assertEqual(where, {id(a), id(b)})
        before = a.stderr_text().count("reloaded")
        a.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: a.stderr_text().count("reloaded") > before, "no reload")
        for c, i in conns:  # every open connection, on either instance, still answers
            self.assertEqual(c.get(f"ka-after-{i}").status, 200)
            c.close()
        for i in range(4):
            self.assertEqual(request("/", f"after-reload-{i}")[0], 200)

    def test_5_with_one_instance_killed_requests_keep_succeeding(self):
        a.proc.kill()
        a.proc.wait()
        for i in range(8):
            status, _ = request("/", f"survivor-{i}")
            self.assertEqual(status, 200)
            s, e = instance_of(f"survivor-{i}")
            self.assertIs(s, b)
            self.assertEqual(e["c-ip"], CLIENT_IP)


if __name__ == "__main__":
    unittest.main()
