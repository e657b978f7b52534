"""Revocation fetches through libcurl (docs/configuration.md "[server.fetch]"): a CRL fetched
through a real HTTP proxy (Debian's tinyproxy, started here), a no_proxy host reached directly,
the environment's proxy used only when the configuration names none, host-less ldap:/// CRL
distribution points (what AD CS writes first) looked up on the configured directory hosts with a
bind, and `certgate verify --urlfetch` naming the route each URL took.

Real certgate, real tinyproxy, real slapd, listeners on loopback. The proxy's outgoing
connections leave from 127.0.0.2, and one CRL listener answers only those: a fetch that got its
CRL from it went through the proxy."""
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import test_fetch_e2e as F  # noqa: E402  (its PKI helpers, pointed at our own folder)
from harness import Server, free_port, run  # noqa: E402
from slapd import READER_DN, READER_PASSWORD, SUFFIX, Slapd, entry  # noqa: E402

shutil.rmtree(F.DIR, ignore_errors=True)  # the (empty) folder test_fetch_e2e made on import
F.DIR = tempfile.mkdtemp(prefix="certgate-curlfetch-pki-")
f = F.f
PROXY, ONLY, OPEN, LDAP, DEAD, DRIP = (free_port() for _ in range(6))
P_MAIN, P_BADPW = free_port(), free_port()
PROXY_FROM = "127.0.0.2"
# %2C: openssl's extension syntax splits on commas; the directory decodes it.
HOSTLESS = ("ldap:///cn=issuing%2Cou=crl%2C" + SUFFIX.replace(",", "%2C") +
            "?certificateRevocationList;binary?base?objectClass=cRLDistributionPoint")
CRL_DN = "cn=issuing%2Cou=crl%2C" + SUFFIX.replace(",", "%2C")
TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"


class CrlListener:
    """Serves /issuing.crl; with `only_from`, only to connections from that address (403 to
    anyone else). Counts answers by peer address."""

    def __init__(self, port, body, only_from=None):
        self.peers = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                peer = self.client_address[0]
                with outer.lock:
                    outer.peers.append(peer)
                ok = self.path == "/issuing.crl" and (only_from is None or peer == only_from)
                data = body if ok else b""
                self.send_response(200 if ok else 403)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return len(self.peers)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Drip:
    """Announces a 1 MB body and sends one byte every 50 ms: a server that would hold a fetch
    for 14 hours. Records how many bytes it got out before the peer hung up."""

    def __init__(self, port):
        import socket
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sent, self.hung_up = 0, threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        with c:
            c.recv(65536)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            try:
                while self.sent < 1000000:
                    c.sendall(b"x")
                    self.sent += 1
                    time.sleep(0.05)
            except OSError:
                self.hung_up.set()

    def stop(self):
        self.sock.close()


class TinyProxy:
    """tinyproxy in the foreground on 127.0.0.1:port, its outgoing connections bound to
    PROXY_FROM, logging every request."""

    def __init__(self, port):
        self.dir = tempfile.mkdtemp(prefix="certgate-tinyproxy-")
        self.log_path = os.path.join(self.dir, "tinyproxy.log")
        conf = os.path.join(self.dir, "tinyproxy.conf")
        with open(conf, "w") as out:
            out.write(f'Port {port}\nListen 127.0.0.1\nBind {PROXY_FROM}\nTimeout 10\nMaxClients 16\n'
                      f'Allow 127.0.0.1\nLogLevel Info\nLogFile "{self.log_path}"\n'
                      f'PidFile "{os.path.join(self.dir, "tinyproxy.pid")}"\n')
        self.out = open(os.path.join(self.dir, "stdout.log"), "w")
        self.proc = subprocess.Popen([TINYPROXY, "-d", "-c", conf], stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        import socket
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("tinyproxy exited: " + open(os.path.join(self.dir, "stdout.log")).read())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("tinyproxy did not listen on %d" % port)
                time.sleep(0.05)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_pki():
    os.makedirs(F.DIR, exist_ok=True)
    F.root("root", "Curl Root CA")
    F.crl("root", f("root.crl"))
    F.issue("issuing", "Curl Issuing CA", "root", F.CA_EXT)
    F.crl("issuing", f("issuing.crl"))
    for name, url in (("viaproxy", f"http://127.0.0.1:{ONLY}/issuing.crl"),
                      ("direct", f"http://localhost:{OPEN}/issuing.crl"),
                      ("drip", f"http://localhost:{DRIP}/drip.crl"),
                      ("dirleaf", HOSTLESS),
                      # A directory host of the configuration, named in full: bound to as well.
                      ("dirhost", f"ldap://127.0.0.1:{LDAP}/{CRL_DN}?certificateRevocationList;binary"),
                      # The same directory under another name: not one of ldap_hosts, anonymous.
                      ("dirother", f"ldap://localhost:{LDAP}/{CRL_DN}?certificateRevocationList;binary")):
        F.issue(name, name, "issuing", F.LEAF_EXT + f"crlDistributionPoints=URI:{url}\n")
        F.chain(name, name, "issuing")


def fetch_settings(password_file, proxy=f"http://127.0.0.1:{PROXY}"):
    proxy_line = "" if proxy is None else f'proxy = "{proxy}"\n'
    return (f'cache_dir = ""\n[server.fetch]\n{proxy_line}no_proxy = ["localhost"]\n'
            f'ldap_hosts = ["ldap://127.0.0.1:{DEAD}", "ldap://127.0.0.1:{LDAP}"]\n'
            f'ldap_bind_dn = "{READER_DN}"\nldap_password_file = "{password_file}"\n')


def write(name, text):
    with open(f(name), "w") as out:
        out.write(text)
    return f(name)


class CurlFetch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        make_pki()
        crl_der = F.read("issuing.crl")
        cls.proxy = TinyProxy(PROXY)
        cls.only = CrlListener(ONLY, crl_der, only_from=PROXY_FROM)
        cls.open = CrlListener(OPEN, crl_der)
        cls.drip = Drip(DRIP)
        cls.ldap = Slapd(LDAP, entry(SUFFIX, ["dcObject", "organization"], dc="corp", o="Corp") +
                         entry(READER_DN, ["simpleSecurityObject", "organizationalRole"], cn="reader",
                               userPassword=READER_PASSWORD) +
                         entry("ou=crl," + SUFFIX, ["organizationalUnit"], ou="crl") +
                         entry("cn=issuing,ou=crl," + SUFFIX, ["cRLDistributionPoint"], cn="issuing",
                               **{"certificateRevocationList;binary": crl_der})).start()
        good_pw = write("reader.pw", READER_PASSWORD + "\n")
        bad_pw = write("wrong.pw", "not-the-password\n")
        cls.server = Server(F.site(P_MAIN, 1), server_extra=fetch_settings(good_pw)).start()
        cls.badpw = Server(F.site(P_BADPW, 1), server_extra=fetch_settings(bad_pw)).start()
        # Configurations for `verify -c`: the environment's proxy, and "" that refuses it.
        cls.env_config = write("env.toml", open(cls.server.config).read().replace(
            f'proxy = "http://127.0.0.1:{PROXY}"\n', ""))
        cls.none_config = write("none.toml", open(cls.server.config).read().replace(
            f'proxy = "http://127.0.0.1:{PROXY}"\n', 'proxy = ""\n'))

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.badpw.stop()
        cls.only.stop()
        cls.open.stop()
        cls.drip.stop()
        cls.proxy.stop()
        cls.ldap.cleanup()
        shutil.rmtree(F.DIR, ignore_errors=True)

    def verify(self, config, name, **env):
        clean = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        return run(["verify", "-c", config, "--site", "Fetch", "--urlfetch", f(name + "-chain.pem")],
                   env={**clean, **env})

    def test_crl_is_fetched_through_the_proxy(self):
        r = F.request(P_MAIN, "viaproxy", "viaproxy")
        self.assertEqual(r.status, 200, r.text)
        self.assertIn(PROXY_FROM, self.only.peers)
        self.assertIn(f"GET http://127.0.0.1:{ONLY}/issuing.crl", self.proxy.log())

    def test_no_proxy_host_is_fetched_directly(self):
        r = F.request(P_MAIN, "direct", "direct")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(self.open.peers, ["127.0.0.1"])
        self.assertNotIn(f"localhost:{OPEN}", self.proxy.log())

    def test_verify_urlfetch_names_each_route(self):
        out = self.verify(self.server.config, "viaproxy")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(f"Route: via proxy http://127.0.0.1:{PROXY}", out.stdout)
        out = self.verify(self.server.config, "direct")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("Route: direct", out.stdout)
        out = self.verify(self.server.config, "dirleaf")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(f"Route: via ldap host ldap://127.0.0.1:{LDAP}", out.stdout)

    def test_environment_proxy_is_used_unless_the_configuration_says_otherwise(self):
        proxy_env = {"http_proxy": f"http://127.0.0.1:{PROXY}"}
        out = self.verify(self.env_config, "viaproxy", **proxy_env)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(f"Route: via proxy http://127.0.0.1:{PROXY}", out.stdout)
        # proxy = "": no proxy whatever the environment says; the listener refuses a direct fetch.
        out = self.verify(self.none_config, "viaproxy", **proxy_env)
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertIn("403.13", out.stdout)
        self.assertIn("HTTP status 403", out.stdout)
        self.assertIn("Route: direct", out.stdout)

    def test_hostless_ldap_point_is_read_from_the_directory_hosts_with_a_bind(self):
        r = F.request(P_MAIN, "dirleaf", "dirleaf")
        self.assertEqual(r.status, 200, r.text)
        with open(self.ldap.log_path, errors="replace") as log:
            text = log.read()
        self.assertIn(f'BIND dn="{READER_DN}"', text)
        self.assertGreaterEqual(self.ldap.searches("objectClass=cRLDistributionPoint"), 1)

    def test_bind_credentials_go_to_the_configured_hosts_only(self):
        # With the wrong password: a URL naming a configured host binds (and fails) ...
        r = F.request(P_BADPW, "dirhost", "dirhost")
        self.assertEqual(r.code(), "403.13", r.text)
        self.assertIn(f"the bind as &#39;{READER_DN}&#39; was refused", r.text)
        # ... one naming any other host reads anonymously: no credentials were sent to it.
        r = F.request(P_BADPW, "dirother", "dirother")
        self.assertEqual(r.status, 200, r.text)

    def test_slow_drip_is_ended_by_the_fetch_timeout(self):
        r = F.request(P_MAIN, "drip", "drip")  # the site's url_timeout_ms is 2000
        self.assertEqual(r.code(), "403.13", r.text)
        self.assertIn("timed out after 2000 ms", r.text)
        self.assertTrue(self.drip.hung_up.wait(5), "certgate must hang up on the drip")
        self.assertLess(self.drip.sent, 1000000)

    def test_wrong_bind_password_fails_the_fetch(self):
        r = F.request(P_BADPW, "dirleaf", "dirleaf")
        self.assertEqual(r.code(), "403.13", r.text)
        self.assertIn(f"the bind as &#39;{READER_DN}&#39; was refused", r.text)
        self.assertIn(f"ldap://127.0.0.1:{DEAD}: cannot connect", r.text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
