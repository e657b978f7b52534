"""Reverse proxy over real processes on loopback: identity headers in each format, spoofed ones
removed, the signed assertion against the served JWKS, a 50 MB upload streamed with bounded
memory, backend down (502.3) and slow (504) on the answer and the W3C line, WebSocket echo,
keep-alive pool reuse, Unix-socket backends. spec: behaviour.md §7."""
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, free_port, get, pki, read_response  # noqa: E402

P = free_port()
BACKEND = free_port()
BACKEND_TLS = free_port()
DEAD = free_port()
TMP = tempfile.mkdtemp(prefix="certgate-proxy-")
SOCK = os.path.join(TMP, "backend.sock")
KEY = os.path.join(TMP, "assertion.key")

COMMON = """
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  host = "{host}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  [sites.mapping]
  [[sites.mapping.one_to_one]]
  user = "azureuser"
  certificate = "@PKI@/alice.pem"
  [[sites.mapping.many_to_one]]
  name = "Staff"
  user = "staff"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "OU"
    match = "Staff"
"""


def site(name, host, fmt, extra=""):
    return f"""
[[sites]]
name = "{name}"
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
backend = "http://127.0.0.1:{BACKEND}"
groups_file = "groups.txt"
{extra}
""" + COMMON.format(port=P, host=host) + f"""
  [sites.forward]
  client_cert = "{fmt}"
  cert_fields = true
"""


SITES = site("ARR", "", "x-arr-clientcert") + f"""
  [sites.forward.assertion]
  key_file = "{KEY}"
  lifetime_seconds = 2
  audience = "tests"
  [sites.proxy]
  read_timeout_ms = 1000
  trusted_cas = ["@PKI@/root-ca.pem"]
  [[sites.locations]]
  path = "/static"
  backend = ""
  [[sites.locations]]
  path = "/unix"
  backend = "unix:{SOCK}"
  [[sites.locations]]
  path = "/dead"
  backend = "http://127.0.0.1:{DEAD}"
  [[sites.locations]]
  path = "/tls"
  backend = "https://127.0.0.1:{BACKEND_TLS}"
""" + site("RFC", "site-a.test", "rfc9440") + site("XFCC", "site-b.test", "xfcc")

backend = None
server = None


def setUpModule():
    global backend, server
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", KEY],
                   check=True, capture_output=True)
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"), str(BACKEND), SOCK,
                                str(BACKEND_TLS), pki("server-chain.pem"), pki("server.key")],
                               stdout=subprocess.PIPE, text=True)
    assert backend.stdout.readline().strip() == "ready"
    server = Server(SITES, server_extra="max_body_bytes = 100000000", threads=1, test_clock=True)
    with open(os.path.join(server.dir, "groups.txt"), "w") as f:
        f.write("admins: azureuser\n")
    os.makedirs(os.path.join(server.dir, "www", "static"))
    with open(os.path.join(server.dir, "www", "static", "index.html"), "w") as f:
        f.write("static here\n")
    server.start()


def tearDownModule():
    assert server.stop() == 0
    backend.kill()
    backend.wait()


def echo(path="/echo", user="alice", sni="localhost", headers=None, method="GET", body=None):
    r = get(P, path, user=user, sni=sni, headers=headers, method=method, body=body)
    assert r.status == 200, (r.status, r.text)
    return json.loads(r.body)


def header_values(reply, name):
    return [v for k, v in reply["headers"] if k.lower() == name.lower()]


def der_b64(name):
    with open(pki(name)) as f:
        return base64.b64encode(base64.b64decode("".join(l for l in f.read().splitlines() if not l.startswith("-----")))).decode()


class Identity(unittest.TestCase):
    def test_x_arr_clientcert_user_and_fields(self):
        r = echo()
        self.assertEqual(header_values(r, "X-Remote-User"), ["azureuser"])
        self.assertEqual(header_values(r, "X-Remote-Auth-Type"), ["Certificate"])
        self.assertEqual(header_values(r, "X-ARR-ClientCert"), [der_b64("alice.pem")])
        self.assertEqual(header_values(r, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(header_values(r, "X-Forwarded-Proto"), ["https"])
        self.assertEqual(header_values(r, "X-Forwarded-Host"), ["localhost"])
        self.assertEqual(header_values(r, "Forwarded"), ['for=127.0.0.1;proto=https;host="localhost"'])
        self.assertIn("CN=alice", header_values(r, "X-Client-Cert-Subject")[0])
        fp = hashlib.sha256(base64.b64decode(der_b64("alice.pem"))).hexdigest()
        self.assertEqual(header_values(r, "X-Client-Cert-Fingerprint"), [fp])
        self.assertEqual(header_values(r, "Host"), ["127.0.0.1:%d" % BACKEND])

    def test_rfc9440_with_chain(self):
        r = echo(sni="site-a.test")
        self.assertEqual(header_values(r, "Client-Cert"), [":" + der_b64("alice.pem") + ":"])
        self.assertEqual(header_values(r, "Client-Cert-Chain"), [":" + der_b64("issuing-ca.pem") + ":"])
        self.assertEqual(header_values(r, "X-ARR-ClientCert"), [])

    def test_xfcc(self):
        r = echo(user="bob", sni="site-b.test")
        (v,) = header_values(r, "X-Forwarded-Client-Cert")
        fp = hashlib.sha256(base64.b64decode(der_b64("bob.pem"))).hexdigest()
        self.assertTrue(v.startswith("Hash=" + fp + ';Cert="-----BEGIN%20CERTIFICATE-----'), v)
        self.assertIn(';Subject="CN=bob, OU=Staff, O=Certgate Demo, C=US"', v)
        self.assertEqual(header_values(r, "X-Remote-User"), ["staff"])

    def test_spoofed_identity_headers_are_removed_whatever_their_case(self):
        spoof = {"X-Remote-User": "admin", "x-remote-user": "admin2", "X-REMOTE-AUTH-TYPE": "Kerberos",
                 "X-ARR-ClientCert": "FAKE", "Client-Cert": ":FAKE:", "x-forwarded-client-cert": "Hash=0",
                 "X-Forwarded-For": "10.9.8.7", "forwarded": "for=10.9.8.7", "X-Certgate-Assertion": "e30.e30.",
                 "X-Client-Cert-Subject": "CN=root", "X-Forwarded-Host": "evil.example"}
        r = echo(headers=spoof)
        self.assertEqual(header_values(r, "X-Remote-User"), ["azureuser"])
        self.assertEqual(header_values(r, "X-ARR-ClientCert"), [der_b64("alice.pem")])
        self.assertEqual(header_values(r, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(header_values(r, "X-Forwarded-Host"), ["localhost"])
        self.assertEqual(len(header_values(r, "X-Certgate-Assertion")), 1)
        self.assertNotEqual(header_values(r, "X-Certgate-Assertion"), ["e30.e30."])
        for name in ("Client-Cert", "X-Forwarded-Client-Cert"):
            self.assertEqual(header_values(r, name), [], name)
        for _, v in r["headers"]:
            self.assertNotIn("FAKE", v)
            self.assertNotIn("10.9.8.7", v)

    def test_hop_by_hop_headers_are_dropped(self):
        r = echo(headers={"Connection": "close, X-Secret-Hop", "X-Secret-Hop": "1", "Keep-Alive": "timeout=5",
                          "Proxy-Authorization": "Basic eA==", "TE": "trailers"})
        for name in ("X-Secret-Hop", "Keep-Alive", "Proxy-Authorization", "TE"):
            self.assertEqual(header_values(r, name), [], name)


def verify_es256(token, jwks):
    """Verifies a JWT's ES256 signature with the openssl CLI; returns the claims or None."""
    head_b64, payload_b64, sig_b64 = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    header = json.loads(base64.urlsafe_b64decode(pad(head_b64)))
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    x, y = (base64.urlsafe_b64decode(pad(key[c])) for c in ("x", "y"))
    spki = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + b"\x04" + x + y
    raw = base64.urlsafe_b64decode(pad(sig_b64))

    def der_int(b):
        b = b.lstrip(b"\0") or b"\0"
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes([len(b)]) + b
    seq = der_int(raw[:32]) + der_int(raw[32:])
    sig = b"\x30" + bytes([len(seq)]) + seq
    d = tempfile.mkdtemp()
    pem = "-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(spki).decode() + "-----END PUBLIC KEY-----\n"
    for name, data in (("pub.pem", pem.encode()), ("sig.der", sig), ("data", (head_b64 + "." + payload_b64).encode())):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    ok = subprocess.run(["openssl", "dgst", "-sha256", "-verify", os.path.join(d, "pub.pem"), "-signature",
                         os.path.join(d, "sig.der"), os.path.join(d, "data")], capture_output=True).returncode == 0
    return json.loads(base64.urlsafe_b64decode(pad(payload_b64))) if ok else None


class Assertion(unittest.TestCase):
    def jwks(self):
        r = get(P, "/.well-known/certgate/jwks.json", user=None)  # public: no certificate needed
        self.assertEqual(r.status, 200)
        return json.loads(r.body)

    def test_assertion_verifies_with_the_served_jwks_and_fails_when_tampered(self):
        jwks = self.jwks()
        self.assertEqual(jwks["keys"][0]["alg"], "ES256")
        (token,) = header_values(echo(), "X-Certgate-Assertion")
        claims = verify_es256(token, jwks)
        self.assertIsNotNone(claims)
        self.assertEqual((claims["sub"], claims["iss"], claims["aud"], claims["amr"], claims["groups"]),
                         ("azureuser", "certgate", "tests", ["Certificate"], ["admins"]))
        fp = hashlib.sha256(base64.b64decode(der_b64("alice.pem"))).hexdigest()
        self.assertEqual(claims["cnf"]["x5t#S256"], fp)
        self.assertEqual(claims["exp"] - claims["iat"], 2)
        h, p, s = token.split(".")
        forged = base64.urlsafe_b64encode(json.dumps(dict(claims, sub="root")).encode()).decode().rstrip("=")
        self.assertIsNone(verify_es256(".".join([h, forged, s]), jwks))

    def test_assertion_expires(self):
        (token,) = header_values(echo(), "X-Certgate-Assertion")
        claims = verify_es256(token, self.jwks())
        server.shift_clock(60)  # well past the assertion's 2 s lifetime
        try:
            (fresh,) = header_values(echo(), "X-Certgate-Assertion")
        finally:
            server.shift_clock(0)
        renewed = verify_es256(fresh, self.jwks())
        # Signed anew at the server's time, not the one held since the connection's first request:
        # the old one's exp is past by then, the new one's is not.
        self.assertGreaterEqual(renewed["iat"], claims["iat"] + 60)
        self.assertLess(claims["exp"], renewed["iat"])
        self.assertEqual(renewed["exp"] - renewed["iat"], 2)


def rss_peak(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class Streaming(unittest.TestCase):
    def test_50_mb_upload_streams_with_bounded_memory(self):
        before = rss_peak(server.proc.pid)
        size = 50 * 1024 * 1024
        c = Connection(P, user="alice", timeout=60)
        head = f"POST /upload?big HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n".encode()
        c.sock.sendall(head)
        block = os.urandom(1 << 20)
        h = hashlib.sha256()
        for _ in range(50):
            c.sock.sendall(block)
            h.update(block)
        r = read_response(c.file)
        c.close()
        self.assertEqual(r.status, 200)
        reply = json.loads(r.body)
        self.assertEqual((reply["body_bytes"], reply["sha256"]), (size, h.hexdigest()))
        grew = rss_peak(server.proc.pid) - before
        self.assertLess(grew, 16 * 1024 * 1024, "certgate's peak RSS grew by %d bytes" % grew)
        self.assertEqual(server.log_entry("big")["sc-status"], "200")

    def test_chunked_download_streams_through(self):
        r = get(P, "/big?n=5000000", user="alice")
        self.assertEqual((r.status, len(r.body), r.headers.get("transfer-encoding")), (200, 5000000, "chunked"))

    def test_chunked_upload_streams_to_the_backend(self):
        c = Connection(P, user="alice")
        parts = [os.urandom(70000), os.urandom(10), os.urandom(300000)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        r = c.request(raw=b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        c.close()
        reply = json.loads(r.body)
        self.assertEqual((reply["body_bytes"], reply["sha256"]),
                         (sum(map(len, parts)), hashlib.sha256(b"".join(parts)).hexdigest()))
        self.assertEqual(header_values(reply, "Transfer-Encoding"), ["chunked"])

    def test_https_backend_with_its_own_trust(self):
        r = echo("/tls/echo")
        self.assertEqual(r["path"], "/tls/echo")
        self.assertEqual(header_values(r, "X-Remote-User"), ["azureuser"])

    def test_head_and_static_location_and_unix_socket(self):
        r = get(P, "/anything", user="alice", method="HEAD")
        self.assertEqual((r.status, r.headers.get("content-length")), (200, "1234"))
        r = get(P, "/static/", user="alice")
        self.assertEqual(r.body, b"static here\n")
        self.assertEqual(echo("/unix/echo")["path"], "/unix/echo")


class Failures(unittest.TestCase):
    def test_backend_down_is_502_3(self):
        r = get(P, "/dead/?down", user="alice")
        self.assertEqual(r.code(), "502.3")
        e = server.log_entry("down")
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"], e["cs-username"]),
                         ("502", "3", "12029", "azureuser"))

    def test_slow_backend_is_504(self):
        t0 = time.time()
        r = get(P, "/slow?slow", user="alice")
        self.assertEqual(r.status, 504)
        self.assertLess(time.time() - t0, 2.5)
        e = server.log_entry("slow")
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"]), ("504", "0", "12002"))

    def test_unauthenticated_request_never_reaches_the_backend(self):
        self.assertEqual(get(P, "/echo", user="uma").code(), "403.16")
        self.assertEqual(get(P, "/echo", user=None).code(), "403.7")


class WebSocketAndPool(unittest.TestCase):
    def test_websocket_echo_through_the_proxy(self):
        c = Connection(P, user="alice")
        key = base64.b64encode(os.urandom(16)).decode()
        c.sock.sendall((f"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        r = read_response(c.file)
        self.assertEqual(r.status, 101)
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.assertEqual(r.headers["sec-websocket-accept"], accept)
        for text in (b"hello", b"again"):
            mask = os.urandom(4)
            c.sock.sendall(bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text)))
            frame = c.file.read(2)
            self.assertEqual(c.file.read(frame[1]), b"echo: " + text)
        c.close()

    def test_keep_alive_pool_reuses_backend_connections(self):
        before = echo("/stats")["connections"]
        for _ in range(6):
            self.assertEqual(get(P, "/echo", user="alice").status, 200)  # a new client connection each time
        after = echo("/stats")["connections"]
        self.assertLessEqual(after - before, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
