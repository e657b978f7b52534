"""Running as a service (issue 18 items 6 and 7): systemd's readiness protocol seen on a
NOTIFY_SOCKET datagram socket the test binds (READY=1 once listening, RELOADING=1 with
MONOTONIC_USEC then READY=1 around SIGHUP, STOPPING=1 on SIGTERM); W3C log files moved or deleted
(logrotate) are reopened by name on SIGUSR1; [server] user = switches a root-started server to
another account after binding a privileged port. Real certgate, real sockets, real TLS."""
import os
import pwd
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, free_port, get  # noqa: E402

SITE = """
[[sites]]
name = "Svc"
id = 1
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
"""


def wait_for(predicate, what, timeout=10):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


class NotifyTest(unittest.TestCase):
    def test_ready_reloading_stopping(self):
        d = tempfile.mkdtemp(prefix="certgate-notify-")
        path = os.path.join(d, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(10)
        srv = Server(SITE.format(port=free_port()))
        os.environ["NOTIFY_SOCKET"] = path
        try:
            srv.start()
        finally:
            del os.environ["NOTIFY_SOCKET"]
        try:
            self.assertEqual(sock.recv(4096), b"READY=1")
            self.assertEqual(srv.proc.pid, srv.proc.pid)
            before = time.monotonic()
            srv.proc.send_signal(signal.SIGHUP)
            reloading = sock.recv(4096).decode().split("\n")
            self.assertEqual(reloading[0], "RELOADING=1")
            self.assertTrue(reloading[1].startswith("MONOTONIC_USEC="), reloading)
            usec = int(reloading[1].split("=", 1)[1])
            # CLOCK_MONOTONIC, the clock systemd compares with (Python's monotonic is the same).
            self.assertLessEqual(int(before * 1e6), usec)
            self.assertLessEqual(usec, int(time.monotonic() * 1e6))
            self.assertEqual(sock.recv(4096), b"READY=1")
            wait_for(lambda: "reloaded: configuration generation 2" in srv.stderr_text(), "the reload")
            # A refused reload (a broken file) is a reload too: READY=1 again, old config serves.
            srv.edit_config('name = "Svc"', 'name = "Svc"\nnot_a_key = 1')
            srv.proc.send_signal(signal.SIGHUP)
            self.assertTrue(sock.recv(4096).startswith(b"RELOADING=1\n"))
            self.assertEqual(sock.recv(4096), b"READY=1")
            self.assertIn("reload refused", srv.stderr_text())
            srv.proc.send_signal(signal.SIGTERM)
            self.assertEqual(sock.recv(4096), b"STOPPING=1")
        finally:
            self.assertEqual(srv.stop(), 0)
            sock.close()

    def test_nothing_is_sent_without_notify_socket(self):
        # The server runs the same without systemd (NOTIFY_SOCKET unset): start, reload, stop.
        srv = Server(SITE.format(port=free_port())).start()
        try:
            srv.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reloaded" in srv.stderr_text(), "the reload")
        finally:
            self.assertEqual(srv.stop(), 0)


class LogReopenTest(unittest.TestCase):
    def setUp(self):
        self.port = free_port()
        self.srv = Server(SITE.format(port=self.port)).start()

    def tearDown(self):
        self.srv.stop()

    def log_file(self):
        d = os.path.join(self.srv.dir, "logs", "W3SVC1")
        names = [n for n in os.listdir(d) if n.startswith("u_ex") and n.endswith(".log")]
        self.assertEqual(len(names), 1, names)
        return os.path.join(d, names[0])

    def lines_in(self, path):
        with open(path, "rb") as f:
            return f.read().decode()

    def request(self, query):
        self.assertEqual(get(self.port, "/?" + query).status, 200)
        self.srv.log_entry(query)  # on disk (in whichever file)

    def usr1(self):
        said = "SIGUSR1: W3C log files reopened"
        before = self.srv.stderr_text().count(said)
        self.srv.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: self.srv.stderr_text().count(said) > before, "the reopen")

    def test_moved_file_is_recreated_at_its_path_on_sigusr1(self):
        self.request("first")
        path = self.log_file()
        os.rename(path, path + ".1")
        # Without the signal the open file is still the moved one (what logrotate relies on).
        self.assertEqual(get(self.port, "/?still-old").status, 200)
        wait_for(lambda: "still-old" in self.lines_in(path + ".1"), "the line in the moved file")
        self.assertFalse(os.path.exists(path))
        self.usr1()
        self.request("second")
        text = self.lines_in(path)
        self.assertTrue(text.startswith("#Software: certgate"), text)
        self.assertIn("#Fields: ", text)
        self.assertIn(" second ", text.replace("\r\n", " "))
        self.assertNotIn("first", text)
        self.assertNotIn("second", self.lines_in(path + ".1"))

    def test_deleted_file_is_recreated_on_sigusr1(self):
        self.request("first")
        path = self.log_file()
        os.unlink(path)
        self.usr1()
        self.request("after-delete")
        text = self.lines_in(path)
        self.assertIn("after-delete", text)
        self.assertNotIn("first", text)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o640)


def free_privileged_port():
    for port in range(700, 1000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise unittest.SkipTest("no free port below 1024")


@unittest.skipUnless(os.geteuid() == 0, "the privilege drop needs root (run as root to test user =)")
class UserDropTest(unittest.TestCase):
    def test_binds_port_below_1024_then_runs_as_the_user(self):
        nobody = pwd.getpwnam("nobody")
        port = free_privileged_port()
        logs = tempfile.mkdtemp(prefix="certgate-droplogs-")
        os.chown(logs, nobody.pw_uid, nobody.pw_gid)
        # pid_file in a folder only root may change: written before the switch, left at exit
        srv = Server(SITE.format(port=port), server_extra='user = "nobody"\ncache_dir = ""\npid_file = "certgate.pid"')
        srv.edit_config('log_dir = "logs"', f'log_dir = "{logs}"')
        os.chmod(srv.dir, 0o711)  # the site's files stay readable after the switch
        srv.start()
        try:
            wait_for(lambda: 'running as user "nobody"' in srv.stderr_text(), "the switch")
            with open(f"/proc/{srv.proc.pid}/status") as f:
                status = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
            self.assertEqual(status["Uid"].split(), [str(nobody.pw_uid)] * 4)
            self.assertEqual(status["Gid"].split(), [str(nobody.pw_gid)] * 4)
            # every thread, not only the main one (glibc applies setuid to all)
            for tid in os.listdir(f"/proc/{srv.proc.pid}/task"):
                with open(f"/proc/{srv.proc.pid}/task/{tid}/status") as f:
                    uid_line = [l for l in f.read().splitlines() if l.startswith("Uid:")][0]
                self.assertEqual(uid_line.split()[1:], [str(nobody.pw_uid)] * 4, tid)
            self.assertEqual(get(port, "/?dropped").status, 200)
            wait_for(lambda: any(os.path.exists(os.path.join(logs, "W3SVC1", n)) for n in
                                 (os.listdir(os.path.join(logs, "W3SVC1")) if os.path.isdir(os.path.join(logs, "W3SVC1")) else [])),
                     "the W3C file")
            log_dir = os.path.join(logs, "W3SVC1")
            log = os.path.join(log_dir, os.listdir(log_dir)[0])
            self.assertEqual(os.stat(log).st_uid, nobody.pw_uid)
            # A reload reads the files as "nobody": a config only root may read cannot be read
            # any more, so the reload is refused and the running configuration keeps serving.
            os.chmod(srv.config, 0o600)
            srv.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload refused" in srv.stderr_text(), "the refused reload")
            self.assertIn("could not be opened", srv.stderr_text().split("reload refused", 1)[1])
            self.assertEqual(get(port, "/?after-reload").status, 200)
        finally:
            self.assertEqual(srv.stop(), 0)
        self.assertTrue(os.path.exists(os.path.join(srv.dir, "certgate.pid")))

    def test_unknown_user_is_a_clear_error(self):
        srv = Server(SITE.format(port=free_port()), server_extra='user = "no-such-account-cg"')
        try:
            srv.start()
        except RuntimeError as e:
            self.assertIn('user = "no-such-account-cg"', str(e))
        else:
            srv.stop()
            self.fail("started with an unknown user")
        self.assertNotEqual(srv.proc.wait(5), 0)


if __name__ == "__main__":
    unittest.main()
