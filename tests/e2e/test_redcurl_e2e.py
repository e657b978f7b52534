"""A hostile pass over the libcurl fetcher (docs/security.md "The fetcher on libcurl: a hostile
pass"), against the real binary:

- any chain (its leaf presented alone: the issuer is looked up by AIA, before any trust) could
  make the server search its own directory hosts, with the [server.fetch] bind, for whatever its
  host-less ldap:/// caIssuers URL asked: a subtree search of userPassword, say. Only what AD CS
  writes (a base search of the value's attribute, an objectClass filter at most) is asked now;
- the proxy's user and password were printed in every route (`verify --urlfetch`, the fetch log);
- a directory's diagnosticMessage (any chain's AIA server) reached the log and the terminal with
  its CR, LF and escape sequences;
- a redirect to ldap://, gopher://, dict:// or file:// is never followed (libcurl's redirect
  protocols), and nothing connects to where it points.

Real certgate, openssl-made PKI, and on loopback: a small LDAP directory (BER by hand, it records
every bind and search), an HTTP server that redirects, a listener that counts connections."""
import http.server
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import test_fetch_e2e as F  # noqa: E402  (its PKI helpers, pointed at our own folder)
from harness import Server, free_port, run  # noqa: E402

shutil.rmtree(F.DIR, ignore_errors=True)  # the (empty) folder test_fetch_e2e made on import
F.DIR = tempfile.mkdtemp(prefix="certgate-redcurl-pki-")
f = F.f
DIRECTORY, REDIRECT, TRAP, PROXY, P_MAIN, CHATTY = (free_port() for _ in range(6))
FORGED = b"x\r\n[2026-12-01 00:00:00.000] [info] forged line\x1b[2J\x1b]0;title\x07"
BIND_DN = "cn=reader,dc=corp"
# openssl's extension syntax splits on commas: %2C, which the directory decodes.
HOSTILE_AIA = "ldap:///DC=corp?userPassword?sub?(objectClass=*)"
ADCS_AIA = "ldap:///CN=Evil%20CA%2CCN=AIA%2CDC=corp?cACertificate?base?objectClass=certificationAuthority"


def tlv(tag, content):
    n = len(content)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + content


def ldap_result(message_id, tag, diagnostic=None):
    """An LDAPMessage holding a result of `tag` (bindResponse, searchResDone): success, or
    noSuchObject with `diagnostic` as its diagnosticMessage."""
    code = b"\x00" if diagnostic is None else b"\x20"
    body = tlv(0x0A, code) + tlv(0x04, b"") + tlv(0x04, diagnostic or b"")
    return tlv(0x30, tlv(0x02, bytes([message_id])) + tlv(tag, body))


class Directory:
    """Answers binds with success and searches with no entries (or, with `diagnostic`, with
    noSuchObject and that diagnosticMessage); records each bind's DN and each search's base and
    scope (0 base, 1 one level, 2 subtree)."""

    def __init__(self, port, diagnostic=None):
        self.diagnostic = diagnostic
        self.binds, self.searches, self.lock = [], [], threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    @staticmethod
    def read(c, buf, n):
        while len(buf) < n:
            data = c.recv(65536)
            if not data:
                raise EOFError
            buf += data
        return buf

    def serve(self, c):
        buf = b""
        try:
            with c:
                while True:
                    buf = self.read(c, buf, 2)
                    length, head = buf[1], 2
                    if length & 0x80:
                        head = 2 + (length & 0x7F)
                        buf = self.read(c, buf, head)
                        length = int.from_bytes(buf[2:head], "big")
                    buf = self.read(c, buf, head + length)
                    message, buf = buf[head:head + length], buf[head + length:]
                    id_len = message[1]
                    message_id = int.from_bytes(message[2:2 + id_len], "big")
                    op = message[2 + id_len:]
                    op_body = op[2:] if op[1] < 0x80 else op[2 + (op[1] & 0x7F):]
                    if op[0] == 0x60:  # bindRequest: version, name, authentication
                        name_len = op_body[4]
                        with self.lock:
                            self.binds.append(op_body[5:5 + name_len].decode(errors="replace"))
                        c.sendall(ldap_result(message_id, 0x61))
                    elif op[0] == 0x63:  # searchRequest: baseObject, scope, ...
                        base_len = op_body[1]
                        base = op_body[2:2 + base_len].decode(errors="replace")
                        scope = op_body[2 + base_len + 2]
                        with self.lock:
                            self.searches.append((base, scope))
                        c.sendall(ldap_result(message_id, 0x65, self.diagnostic))
                    elif op[0] == 0x42:  # unbindRequest
                        return
        except (EOFError, OSError, IndexError):
            return

    def seen(self):
        with self.lock:
            return list(self.binds), list(self.searches)

    def stop(self):
        self.sock.close()


class Redirects:
    """Answers /to-<scheme> with a 302 to that scheme's URL at the trap's port."""

    def __init__(self, port):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                targets = {"/to-ldap": f"ldap://127.0.0.1:{TRAP}/cn=x?certificateRevocationList",
                           "/to-gopher": f"gopher://127.0.0.1:{TRAP}/_x",
                           "/to-dict": f"dict://127.0.0.1:{TRAP}/info",
                           "/to-file": "file:///etc/passwd"}
                self.send_response(302)
                self.send_header("Location", targets.get(self.path, "/"))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Trap:
    """Counts the connections it accepts."""

    def __init__(self, port):
        self.sock = socket.create_server(("127.0.0.1", port))
        self.connections = 0
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            c.close()

    def stop(self):
        self.sock.close()


def make_pki():
    os.makedirs(F.DIR, exist_ok=True)
    F.root("root", "Redcurl Root CA")
    F.crl("root", f("root.crl"))
    F.issue("issuing", "Redcurl Issuing CA", "root", F.CA_EXT)
    for scheme in ("ldap", "gopher", "dict", "file"):
        name = "to" + scheme
        F.issue(name, name, "issuing",
                F.LEAF_EXT + f"crlDistributionPoints=URI:http://127.0.0.1:{REDIRECT}/to-{scheme}\n")
        F.chain(name, name, "issuing")
    # Through the proxy (localhost is not in no_proxy).
    F.issue("proxied", "proxied", "issuing", F.LEAF_EXT + f"crlDistributionPoints=URI:http://localhost:{TRAP}/a.crl\n")
    F.chain("proxied", "proxied", "issuing")
    # An attacker's CA, trusted by nobody; its leaves are presented alone.
    F.root("evil-root", "Evil Root")
    F.issue("evil-ca", "Evil CA", "evil-root", F.CA_EXT)
    for name, url in (("hostile", HOSTILE_AIA), ("adcs", ADCS_AIA),
                      ("chatty", f"ldap://127.0.0.1:{CHATTY}/cn=x?cACertificate")):
        F.issue(name, name, "evil-ca", F.LEAF_EXT + f"authorityInfoAccess=caIssuers;URI:{url}\n")
        F.chain(name, name)


class RedCurl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        make_pki()
        cls.directory = Directory(DIRECTORY)
        cls.chatty = Directory(CHATTY, diagnostic=FORGED)
        cls.redirects = Redirects(REDIRECT)
        cls.trap = Trap(TRAP)
        with open(f("reader.pw"), "w") as out:
            out.write("reader-secret\n")
        # The proxy is a bound port that refuses (PROXY is reserved for us by free_port).
        extra = (f'cache_dir = ""\n[server.fetch]\nproxy = "http://alice:s3cret@127.0.0.1:{PROXY}"\n'
                 f'no_proxy = ["127.0.0.1"]\nldap_hosts = ["ldap://127.0.0.1:{DIRECTORY}"]\n'
                 f'ldap_bind_dn = "{BIND_DN}"\nldap_password_file = "{f("reader.pw")}"\n')
        cls.server = Server(F.site(P_MAIN, 1), server_extra=extra).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.directory.stop()
        cls.chatty.stop()
        cls.redirects.stop()
        cls.trap.stop()
        shutil.rmtree(F.DIR, ignore_errors=True)

    def test_an_untrusted_chain_cannot_search_the_directory_hosts_at_will(self):
        # What AD CS writes: asked, with the bind, as a base search (the answer holds no issuer).
        r = F.request(P_MAIN, "adcs", "adcs")
        self.assertEqual(r.code(), "403.16", r.text)
        binds, searches = self.directory.seen()
        self.assertIn(BIND_DN, binds)
        self.assertIn(("CN=Evil CA,CN=AIA,DC=corp", 0), searches)
        # A subtree search for userPassword as the bind account: never sent.
        r = F.request(P_MAIN, "hostile", "hostile")
        self.assertEqual(r.code(), "403.16", r.text)
        time.sleep(0.3)
        _, searches = self.directory.seen()
        self.assertNotIn(("DC=corp", 2), searches)
        self.assertEqual([s for s in searches if s[0] == "DC=corp"], [])

    def test_a_directorys_words_cannot_forge_log_lines(self):
        # Any chain's AIA directory answers with CR, LF and terminal escapes in its message.
        r = F.request(P_MAIN, "chatty", "chatty")
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertEqual(len(self.chatty.seen()[1]), 1)
        deadline = time.time() + 5
        while "forged line" not in self.server.stderr_text() and time.time() < deadline:
            time.sleep(0.05)
        log = self.server.stderr_text()
        line = next((l for l in log.splitlines() if "forged line" in l), "")
        self.assertIn(f"127.0.0.1:{CHATTY}", line)  # on the line of the failed fetch, not one of its own
        self.assertNotIn("\x1b", log)
        self.assertNotIn("\x07", log)

    def test_the_proxys_credentials_are_not_printed(self):
        out = run(["verify", "-c", self.server.config, "--site", "Fetch", "--urlfetch", f("proxied-chain.pem")])
        self.assertIn(f"Route: via proxy http://127.0.0.1:{PROXY}", out.stdout, out.stdout + out.stderr)
        self.assertNotIn("s3cret", out.stdout + out.stderr)
        self.assertNotIn("alice", out.stdout + out.stderr)

    def test_redirects_to_other_protocols_are_not_followed(self):
        before = self.trap.connections
        for scheme in ("ldap", "gopher", "dict", "file"):
            r = F.request(P_MAIN, "to" + scheme, "to" + scheme)
            self.assertEqual(r.code(), "403.13", r.text)
            self.assertIn(f"Protocol &quot;{scheme}&quot; not supported", r.text)
        time.sleep(0.3)
        self.assertEqual(self.trap.connections, before)


if __name__ == "__main__":
    unittest.main(verbosity=2)
