"""Stopping under load while requests wait for the server's worker threads (issue 14 item 8): a CRL
distribution point and a directory that accept connections and never answer, slow Basic password
checks queued behind each other, and ordinary requests. SIGTERM, SIGINT, and a reload followed by
a stop must end the process with status 0 and no crash, and every waiting client must get an
answer or a closed connection, never a hang."""
import base64
import os
import shutil
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
from harness import Connection, Server, client_context, free_port, get, mtls_site, read_response  # noqa: E402
from listeners import Silent  # noqa: E402

HANG_HTTP, HANG_LDAP, DEAD_OCSP, DEAD_CRL, DEAD_LDAP = (free_port() for _ in range(5))
P_CRL, P_DIR, P_BASIC = free_port(), free_port(), free_port()
OPKI = tempfile.mkdtemp(prefix="certgate-shutdown-pki-")
HERE = os.path.dirname(os.path.abspath(__file__))
# A bcrypt hash of cost 13 (about a second a check on a busy test machine): any password is
# hashed in full before it is found wrong, so the single password worker stays busy.
SLOW_HASH = "$2b$13$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzABCDE"
# Password checks queued by each load(): running them all at stop (the pool drained instead of
# stopped) takes about PASSWORD_CLIENTS seconds, more than STOP_BOUND; a stop takes the grace
# period and at most the one check in progress.
PASSWORD_CLIENTS = 12
STOP_BOUND = 10
# What a crash, an abort or a sanitizer leaves on stderr.
CRASH_MARKS = ("terminate called", "AddressSanitizer", "LeakSanitizer", "runtime error:", "Segmentation",
               "Aborted", "double free", "corrupted")


SITES = mtls_site("Crl", P_CRL, 1, f'''trusted_cas = ["{OPKI}/root.pem"]
  url_timeout_ms = 60000''') + mtls_site("Dir", P_DIR, 2, '''trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]''') + f'''
  [sites.mapping]
  [sites.directory_mapping]
  url = ["ldap://127.0.0.1:{HANG_LDAP}"]
  bind_dn = "cn=reader,dc=corp,dc=test"
  bind_password = "reader-secret"
  base_dn = "ou=people,dc=corp,dc=test"
  domain = "CORP"
  timeout_ms = 60000
  connect_timeout_ms = 1000

[[sites]]
name = "Basic"
id = 3
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P_BASIC}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.basic]
  enabled = true
  users_file = "users.txt"
  [[sites.locations]]
  path = "/accept"
  anonymous = false
'''


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Client(threading.Thread):
    """One request on its own connection; `outcome` is ("answered", status), ("closed", why) or
    ("hang", why) when nothing came within the timeout."""

    def __init__(self, port, path, context=None, headers=None):
        super().__init__(daemon=True)
        self.port, self.path, self.context, self.headers = port, path, context, headers
        self.outcome = None
        self.sent = threading.Event()

    def run(self):
        try:
            c = Connection(self.port, context=self.context or client_context(), timeout=40)
        except (OSError, ssl.SSLError) as e:
            self.outcome = ("closed", f"connect: {e}")
            self.sent.set()
            return
        try:
            lines = [f"GET {self.path} HTTP/1.1", "Host: localhost"] + \
                    [f"{k}: {v}" for k, v in (self.headers or {}).items()]
            c.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            self.sent.set()
            self.outcome = ("answered", read_response(c.file).status)
        except socket.timeout as e:
            self.outcome = ("hang", str(e))
        except (OSError, ssl.SSLError, ConnectionError, ValueError, IndexError) as e:
            self.outcome = ("closed", f"{type(e).__name__}: {e}")
        finally:
            self.sent.set()
            c.close()


def setUpModule():
    subprocess.run(["bash", os.path.join(HERE, "online_pki.sh"), OPKI, str(HANG_HTTP), str(DEAD_OCSP),
                    str(DEAD_CRL), str(DEAD_LDAP)], check=True)


def tearDownModule():
    shutil.rmtree(OPKI, ignore_errors=True)


class StopUnderLoad(unittest.TestCase):
    def setUp(self):
        self.crl = Silent(HANG_HTTP)
        self.crl.start()
        self.addCleanup(self.crl.stop)
        self.ldap = Silent(HANG_LDAP)
        self.ldap.start()
        self.addCleanup(self.ldap.stop)
        self.srv = Server(SITES, server_extra='shutdown_grace_ms = 300\npid_file = "certgate.pid"')
        with open(os.path.join(self.srv.dir, "users.txt"), "w") as f:
            f.write(f"slow:{SLOW_HASH}\n")
        self.srv.start()
        self.clients = []

    def tearDown(self):
        if self.srv.proc and self.srv.proc.poll() is None:
            self.srv.proc.kill()
            self.srv.proc.wait()
        self.srv.proc.stdout.close()
        self.srv.stderr.close()

    def wait_for(self, what, condition):
        deadline = time.time() + 10
        while not condition():
            if time.time() > deadline:
                self.fail(f"never {what}; stderr: {self.srv.stderr_text()[-2000:]}")
            time.sleep(0.05)

    def load(self, tag, new_fetch=True):
        """Requests of every waiting kind, each on a connection of its own, plus ordinary ones
        answered before the stop. Returns once all of them wait."""
        crl_before, ldap_before = self.crl.count(), self.ldap.count()
        started = []
        for i in range(3):
            started.append(Client(P_CRL, f"/?crl-{tag}-{i}", client_context("olga", cert_dir=OPKI)))
            started.append(Client(P_DIR, f"/?dir-{tag}-{i}", client_context("alice")))
        for i in range(PASSWORD_CLIENTS):
            started.append(Client(P_BASIC, f"/accept/?pw-{tag}-{i}", headers=basic("slow", f"wrong-{tag}-{i}")))
        for c in started:
            c.start()
        for c in started:
            self.assertTrue(c.sent.wait(10), "a client could not send its request")
        self.clients += started
        # The distribution point and the directory were asked (the waits are real).
        if new_fetch:
            self.wait_for("asked the CRL server", lambda: self.crl.count() > crl_before)
        self.wait_for("asked the directory", lambda: self.ldap.count() > ldap_before)
        # Ordinary requests are answered meanwhile: the loops are not held by the waiting ones.
        self.assertEqual(get(P_BASIC, f"/?plain-{tag}").status, 200)
        self.assertEqual(get(P_DIR, f"/?nomap-{tag}").status, 403)  # no client certificate: 403.7

    def stop_and_check(self, sig):
        self.srv.proc.send_signal(sig)
        try:
            code = self.srv.proc.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            self.fail(f"certgate did not exit within {STOP_BOUND} s of the signal: the stop waits on a worker "
                      "(queued password checks, a CRL server or a directory that does not answer)")
        stderr = self.srv.stderr_text()
        self.assertEqual(code, 0, stderr[-3000:])
        for mark in CRASH_MARKS:
            self.assertNotIn(mark, stderr)
        self.assertIn("stopped; logs flushed", stderr)
        self.assertFalse(os.path.exists(os.path.join(self.srv.dir, "certgate.pid")))
        for c in self.clients:
            c.join(45)
            self.assertFalse(c.is_alive(), f"client {c.path} still waiting after the server exited")
            self.assertIsNotNone(c.outcome, c.path)
            self.assertNotEqual(c.outcome[0], "hang", (c.path, c.outcome))
            if c.outcome[0] == "answered":
                self.assertIn(c.outcome[1], (200, 401, 403, 500, 503), (c.path, c.outcome))

    def test_sigterm_with_every_kind_of_waiter(self):
        self.load("term")
        self.stop_and_check(signal.SIGTERM)

    def test_sigint_with_every_kind_of_waiter(self):
        self.load("int")
        self.stop_and_check(signal.SIGINT)

    def test_reload_then_stop_with_waiters_on_both_generations(self):
        self.load("old")
        self.srv.proc.send_signal(signal.SIGHUP)
        self.wait_for("reloaded", lambda: "reloaded" in self.srv.stderr_text())
        self.load("new", new_fetch=False)
        self.stop_and_check(signal.SIGTERM)


if __name__ == "__main__":
    unittest.main()
