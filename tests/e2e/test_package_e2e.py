"""The Debian package (issue 18 item 6): `make package` builds the .deb with CPack, `dpkg -i`
installs it on this machine, the installed certgate accepts the shipped example configuration,
`systemd-analyze verify` finds nothing to say about the unit, and the installed server runs as
the unit runs it — the certgate account with only CAP_NET_BIND_SERVICE, on a port below 1024,
telling systemd READY=1. The package is purged at the end. Needs root (dpkg -i): skipped with a
message otherwise, unless CI=true."""
import glob
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest


SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PACKAGE_DIR = os.environ.get("PACKAGE_DIR", os.path.join(SOURCE, "build-package"))
UNIT = "/lib/systemd/system/certgate.service"


def sh(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=1800, **kw)


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


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            if os.environ.get("CI") == "true":
                raise AssertionError("CI=true: this test installs a package and needs root")
            raise unittest.SkipTest("installing the package with dpkg -i needs root (run as root, or CI=true)")
        if sh(["dpkg-query", "-W", "certgate"]).returncode == 0:
            raise unittest.SkipTest("a certgate package is already installed here; not touching it")
        for old in glob.glob(os.path.join(PACKAGE_DIR, "certgate_*.deb")):
            os.remove(old)
        built = sh(["make", "-C", SOURCE, "package", f"PACKAGE_DIR={PACKAGE_DIR}", "JOBS=2"])
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        debs = glob.glob(os.path.join(PACKAGE_DIR, "certgate_*.deb"))
        assert len(debs) == 1, debs
        cls.deb = debs[0]
        installed = sh(["dpkg", "-i", cls.deb])
        assert installed.returncode == 0, installed.stdout + installed.stderr

    @classmethod
    def tearDownClass(cls):
        if hasattr(cls, "deb"):
            purged = sh(["dpkg", "--purge", "certgate"])
            assert purged.returncode == 0, purged.stderr
            assert not os.path.exists("/usr/bin/certgate")
            assert not os.path.exists(UNIT)

    def test_depends_on_the_libraries_and_what_the_scripts_use(self):
        depends = sh(["dpkg-deb", "-f", self.deb, "Depends"]).stdout
        for name in ("libssl3", "libsystemd0", "libcurl4", "libldap", "adduser", "openssl", "ssl-cert"):
            self.assertIn(name, depends)
        conffiles = sh(["dpkg-query", "--showformat=${Conffiles}", "-W", "certgate"]).stdout
        self.assertIn("/etc/certgate/certgate.toml", conffiles)
        self.assertIn("/etc/logrotate.d/certgate", conffiles)

    def test_installed_certgate_accepts_the_example_configuration(self):
        r = sh(["/usr/bin/certgate", "check-config", "-c", "/etc/certgate/certgate.toml"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK: /etc/certgate/certgate.toml: 1 site(s), 1 binding(s)", r.stdout)
        # and so can the service account (the key is root:certgate 0640, nothing more)
        r = sh(["runuser", "-u", "certgate", "--", "/usr/bin/certgate", "check-config", "-c",
                "/etc/certgate/certgate.toml"])
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat("/etc/certgate/server.key")
        self.assertEqual(st.st_mode & 0o777, 0o640)
        self.assertEqual(os.stat("/etc/certgate/client-ca.key").st_mode & 0o077, 0)

    def test_unit_verifies_and_is_hardened(self):
        r = sh(["systemd-analyze", "verify", UNIT])
        self.assertEqual(r.returncode, 0, r.stderr)
        # systemd-analyze reports unknown or unparsable settings as warnings with status 0
        self.assertEqual([l for l in (r.stdout + r.stderr).splitlines() if "certgate.service" in l], [])
        with open(UNIT) as f:
            unit = f.read()
        for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=certgate", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                     "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                     "ReadWritePaths=/var/log/certgate /var/cache/certgate", "LimitNOFILE=65536",
                     "ExecStart=/usr/bin/certgate serve -c /etc/certgate/certgate.toml"):
            self.assertIn("\n" + line + "\n", unit)

    def test_make_install_layout(self):
        # `make install` is cmake --install: the same files under the prefix (here /usr), into DESTDIR
        dest = tempfile.mkdtemp(prefix="certgate-destdir-")
        r = sh(["cmake", "--install", PACKAGE_DIR], env=dict(os.environ, DESTDIR=dest))
        self.assertEqual(r.returncode, 0, r.stderr)
        for path in ("usr/bin/certgate", "etc/certgate/certgate.toml", "lib/systemd/system/certgate.service",
                     "etc/logrotate.d/certgate", "usr/share/certgate/www/index.html",
                     "usr/share/doc/certgate/deployment.md", "usr/share/doc/certgate/README.md"):
            self.assertTrue(os.path.isfile(os.path.join(dest, path)), path)
        self.assertTrue(os.access(os.path.join(dest, "usr/bin/certgate"), os.X_OK))
        shutil.rmtree(dest)

    def test_account_and_folders(self):
        self.assertEqual(sh(["getent", "passwd", "certgate"]).returncode, 0)
        import pwd
        uid = pwd.getpwnam("certgate").pw_uid
        for d in ("/var/log/certgate", "/var/cache/certgate"):
            self.assertEqual(os.stat(d).st_uid, uid, d)
        r = sh(["logrotate", "-d", "/etc/logrotate.d/certgate"]) if shutil.which("logrotate") else None
        if r is not None:
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_runs_as_the_unit_runs_it(self):
        # The unit's account and capability set, without systemd: setpriv as certgate with only
        # CAP_NET_BIND_SERVICE (ambient), on a port below 1024, with the example configuration
        # pointed at that port, and a NOTIFY_SOCKET to hear READY=1.
        port = free_privileged_port()
        d = tempfile.mkdtemp(prefix="certgate-pkg-")
        os.chmod(d, 0o755)
        with open("/etc/certgate/certgate.toml") as f:
            text = f.read()
        text = text.replace('listen = "*:443"', f'listen = "127.0.0.1:{port}"')
        text = text.replace('admin_listen = "127.0.0.1:9180"', "")
        self.assertIn(f"127.0.0.1:{port}", text)
        conf = os.path.join(d, "certgate.toml")
        with open(conf, "w") as f:
            f.write(text)
        notify = os.path.join(d, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify)
        os.chmod(notify, 0o777)
        sock.settimeout(15)
        proc = subprocess.Popen(
            ["setpriv", "--reuid=certgate", "--regid=certgate", "--init-groups", "--no-new-privs",
             "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
             "--bounding-set=-all,+net_bind_service", "/usr/bin/certgate", "serve", "-c", conf],
            env=dict(os.environ, NOTIFY_SOCKET=notify), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertEqual(sock.recv(4096), b"READY=1")
            # the certificate the package generated, for the name it was generated for
            ctx = ssl.create_default_context(cafile="/etc/certgate/server.pem")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
            self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:200])
            self.assertIn(b"certgate is running", answer)
            with open(f"/proc/{proc.pid}/status") as f:
                status = f.read()
            import pwd
            self.assertEqual(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1), str(pwd.getpwnam("certgate").pw_uid))
            self.assertEqual(re.search(r"^CapEff:\s+(\w+)", status, re.M).group(1), "0000000000000400")
            proc.terminate()
            self.assertEqual(sock.recv(4096), b"STOPPING=1")
            self.assertEqual(proc.wait(15), 0)
            # its W3C log went where the unit lets it write
            self.assertTrue(glob.glob("/var/log/certgate/W3SVC*/u_ex*.log"))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            sock.close()


if __name__ == "__main__":
    unittest.main()
