"""Identity is never forged toward the backend (issue 13, items 1-5), attacked as a hostile client
would: a certificate the decision did not validate is never forwarded; header names with '_' are
dropped (CGI/WSGI/PHP/Rack read X_Remote_User as X-Remote-User); the backend receives exactly the
path the policy matched, or the request is refused; one valid Host, trailing dot stripped, routes
plain HTTP too, and an absolute-form target's authority stands for it; XFCC values are quoted.
Real certgate, real TLS, a real backend that echoes what it received (backend.py)."""
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, pki, read_response  # noqa: E402

P = free_port()       # https
H = free_port()       # plain http
BACKEND = free_port()
TMP = tempfile.mkdtemp(prefix="certgate-ident-")
SOCK = os.path.join(TMP, "backend.sock")
KEY = os.path.join(TMP, "assertion.key")
USERS = os.path.join(TMP, "users.htpasswd")

TRUST = """
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  revocation = "off"
"""


def tls_binding(host=""):
    return f"""
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  host = "{host}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
"""


def http_binding(host):
    return f"""
  [[sites.bindings]]
  listen = "127.0.0.1:{H}"
  protocol = "http"
  host = "{host}"
"""


SITES = f"""
[[sites]]
name = "App"
id = 1
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert"]
backend = "http://127.0.0.1:{BACKEND}"
""" + tls_binding() + TRUST + f"""
  [sites.basic]
  enabled = true
  users_file = "{USERS}"
  [sites.mapping]
  [[sites.mapping.one_to_one]]
  user = "azureuser"
  certificate = "@PKI@/alice.pem"
  [sites.forward]
  client_cert = "x-arr-clientcert"
  cert_fields = true
  [sites.forward.assertion]
  key_file = "{KEY}"
  [[sites.locations]]
  path = "/open"
  ssl_flags = ["Ssl"]
  [[sites.locations]]
  path = "/app/secure"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  anonymous = false
  [[sites.locations]]
  path = "/static"
  backend = ""

[[sites]]
name = "B"
id = 2
root = "www/public"
ssl_flags = ["Ssl"]
""" + tls_binding("site-a.test") + f"""

[[sites]]
name = "XFCC"
id = 3
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
backend = "http://127.0.0.1:{BACKEND}"
""" + tls_binding("site-b.test") + TRUST + """
  [sites.mapping]
  [[sites.mapping.many_to_one]]
  name = "xfcc"
  user = "xfccuser"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "OU"
    match = "XfccTest"
  [sites.forward]
  client_cert = "xfcc"

[[sites]]
name = "Underscores"
id = 4
root = "www"
ssl_flags = ["Ssl"]
backend = "http://127.0.0.1:{BACKEND}"
""".replace("{BACKEND}", str(BACKEND)) + tls_binding("partner.test") + """
  [sites.forward]
  underscores_in_headers = true

[[sites]]
name = "NoMapping"
id = 7
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
backend = "http://127.0.0.1:{BACKEND}"
""".replace("{BACKEND}", str(BACKEND)) + tls_binding("nousage.test") + TRUST + """
  [sites.forward]
  client_cert = "x-arr-clientcert"

[[sites]]
name = "PlainA"
id = 5
root = "www"
""" + http_binding("a.test") + f"""

[[sites]]
name = "PlainB"
id = 6
root = "www/public"
""" + http_binding("b.test") + f"""
  [[sites.locations]]
  path = "/api"
  backend = "http://127.0.0.1:{BACKEND}"
"""

backend = None
server = None


def openssl(*args, cwd=TMP):
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


def make_certs():
    # A self-signed "admin": presented at the handshake, trusted by nobody.
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=admin", "-days", "30",
            "-addext", "extendedKeyUsage=clientAuth", "-keyout", "admin.key", "-out", "admin.pem")
    # A valid client certificate whose Subject and SANs carry XFCC delimiters.
    with open(os.path.join(TMP, "xfcc.cnf"), "w") as f:
        f.write('[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nO = Certgate Demo\nOU = XfccTest\n'
                'CN = xfcc;Hash=0\n[ext]\nsubjectAltName = @alt\nextendedKeyUsage = clientAuth\n'
                '[alt]\nURI.1 = urn:a;Hash=forged\nURI.2 = urn:b,By=spiffe://evil\n'
                'DNS.1 = c\\"d.test\nDNS.2 = plain.test\n')
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "xfcc.key", "-out", "xfcc.csr",
            "-config", "xfcc.cnf")
    openssl("x509", "-req", "-in", "xfcc.csr", "-CA", os.path.abspath(pki("issuing-ca.pem")), "-CAkey", os.path.abspath(pki("issuing-ca.key")),
            "-set_serial", "4242", "-days", "30", "-extfile", "xfcc.cnf", "-extensions", "ext", "-out", "xfcc.pem")
    with open(os.path.join(TMP, "xfcc-chain.pem"), "w") as out:
        for name in (os.path.join(TMP, "xfcc.pem"), pki("issuing-ca.pem")):
            with open(name) as f:
                out.write(f.read())
    hashed = subprocess.run(["openssl", "passwd", "-6", "secret"], check=True, capture_output=True,
                            text=True).stdout.strip()
    with open(USERS, "w") as f:
        f.write(f"basicuser:{hashed}\n")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", KEY)


def setUpModule():
    global backend, server
    make_certs()
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"),
                                str(BACKEND), SOCK], stdout=subprocess.PIPE, text=True)
    assert backend.stdout.readline().strip() == "ready"
    try:
        server = Server(SITES, threads=1)
        os.makedirs(os.path.join(server.dir, "www", "static"))
        with open(os.path.join(server.dir, "www", "static", "index.html"), "w") as f:
            f.write("static here\n")
        server.start()
    except BaseException:
        backend.kill()
        raise


def tearDownModule():
    assert server.stop() == 0
    backend.kill()
    backend.wait()


def connect(user=None, sni="localhost", cert_dir=None, tls=True):
    if not tls:
        return Connection(H, tls=False, sni="a.test")
    ctx = client_context(user, cert_dir=cert_dir) if user else None
    return Connection(P, sni=sni, context=ctx)


def raw_request(conn, head):
    """Sends `head` (lines joined by CRLF) as is and reads the answer."""
    conn.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    return read_response(conn.file)


def send(head, **kw):
    c = connect(**kw)
    try:
        return raw_request(c, head)
    finally:
        c.close()


def echoed(r):
    assert r.status == 200, (r.status, r.text)
    return json.loads(r.body)


def values(reply, name):
    return [v for k, v in reply["headers"] if k.lower() == name.lower()]


def names(reply):
    return [k.lower() for k, _ in reply["headers"]]


def basic(user="basicuser", password="secret"):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


CERT_HEADERS = ("x-arr-clientcert", "x-client-cert-subject", "x-client-cert-issuer", "x-client-cert-serial",
                "x-client-cert-not-after", "x-client-cert-fingerprint", "client-cert", "x-forwarded-client-cert")


class UnvalidatedCertificate(unittest.TestCase):
    """Item 1: the handshake carried a certificate; the location's decision never looked at it."""

    def test_self_signed_admin_is_not_forwarded_where_the_location_does_not_negotiate(self):
        r = echoed(send(["GET /open/echo HTTP/1.1", "Host: localhost"], user="admin", cert_dir=TMP))
        for h in CERT_HEADERS:
            self.assertNotIn(h, names(r), f"{h} forwarded for a certificate nobody validated")
        self.assertEqual(values(r, "X-Remote-Auth-Type"), ["Anonymous"])
        self.assertEqual(values(r, "X-Remote-User"), [])

    def test_assertion_of_a_basic_user_names_no_unvalidated_certificate(self):
        r = echoed(send(["GET /open/echo HTTP/1.1", "Host: localhost", "Authorization: " + basic()],
                        user="admin", cert_dir=TMP))
        self.assertEqual(values(r, "X-Remote-User"), ["basicuser"])
        token = values(r, "X-Certgate-Assertion")[0]
        self.assertEqual(claims(token)["sub"], "basicuser")
        self.assertNotIn("cnf", claims(token), "the JWT binds a certificate the decision never validated")
        self.assertNotIn("x-arr-clientcert", names(r))

    def test_a_validated_certificate_is_forwarded_only_by_the_request_that_validated_it(self):
        c = connect(user="alice")
        try:
            secure = echoed(raw_request(c, ["GET /app/secure/x HTTP/1.1", "Host: localhost"]))
            self.assertEqual(values(secure, "X-Remote-User"), ["azureuser"])
            self.assertEqual(len(values(secure, "X-ARR-ClientCert")), 1)
            self.assertIn("cnf", claims(values(secure, "X-Certgate-Assertion")[0]))
            # Same connection, same certificate, but this location never validates it.
            opened = echoed(raw_request(c, ["GET /open/x HTTP/1.1", "Host: localhost", "Authorization: " + basic()]))
            for h in CERT_HEADERS:
                self.assertNotIn(h, names(opened))
            self.assertEqual(values(opened, "X-Remote-User"), ["basicuser"])
            self.assertNotIn("cnf", claims(values(opened, "X-Certgate-Assertion")[0]))
        finally:
            c.close()


class WithoutMapping(unittest.TestCase):
    """A site that validates but does not map: the request runs as anonymous, and the certificate
    the location validated goes to the backend, which maps it itself (IIS hands the application
    Request.ClientCertificate; Tomcat's SSLValve reads the header)."""

    def test_validated_certificate_is_forwarded_with_an_anonymous_user(self):
        r = echoed(send(["GET /x HTTP/1.1", "Host: nousage.test"], user="alice", sni="nousage.test"))
        with open(pki("alice.pem")) as f:
            pem = f.read()
        der_b64 = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))
        self.assertEqual(values(r, "X-ARR-ClientCert"), [der_b64])
        self.assertEqual(values(r, "X-Remote-Auth-Type"), ["Anonymous"])
        self.assertEqual(values(r, "X-Remote-User"), [])

    def test_an_untrusted_certificate_is_refused_not_forwarded(self):
        r = send(["GET /x HTTP/1.1", "Host: nousage.test"], user="admin", cert_dir=TMP, sni="nousage.test")
        self.assertEqual(r.status, 403)
        self.assertIn("403.16", r.text)


class Underscores(unittest.TestCase):
    """Item 2: names with '_' are dropped by default; identity names stay removed when allowed."""

    SPOOF = ["X_Remote_User: admin", "x_remote-user: admin", "X-Remote_User: admin", "X_ARR_ClientCert: Zm9v",
             "X_Client_Cert_Subject: CN=admin", "X_Forwarded_For: 10.0.0.1", "X_Certgate_Assertion: e30.e30.",
             "Remote_User: admin", "Some_Header: kept-only-when-allowed", "Content_Length: 5"]

    def test_every_name_with_an_underscore_is_dropped_by_default(self):
        r = echoed(send(["GET /open/echo HTTP/1.1", "Host: localhost"] + self.SPOOF))
        self.assertEqual([n for n in names(r) if "_" in n], [])
        self.assertEqual(values(r, "X-Remote-User"), [])
        self.assertNotIn("x-arr-clientcert", names(r))
        self.assertEqual(values(r, "X-Forwarded-For"), ["127.0.0.1"])

    def test_allowed_underscores_still_lose_the_identity_names_after_folding(self):
        r = echoed(send(["GET /echo HTTP/1.1", "Host: partner.test"] + self.SPOOF, sni="partner.test"))
        under = {k.lower(): v for k, v in r["headers"] if "_" in k}
        self.assertEqual(under, {"some_header": "kept-only-when-allowed", "remote_user": "admin"})
        self.assertEqual(values(r, "X-Forwarded-For"), ["127.0.0.1"])


class HostileHeaderSyntax(unittest.TestCase):
    """Name variants a parser might read differently from certgate never smuggle an identity."""

    def test_folded_continuation_stays_inside_the_previous_value(self):
        for fold in (" ", "\t"):
            r = echoed(send(["GET /open/x HTTP/1.1", "Host: localhost", "Foo: bar", fold + "X-Remote-User: admin"]))
            self.assertEqual(values(r, "X-Remote-User"), [])
            self.assertEqual(values(r, "Foo"), ["bar X-Remote-User: admin"])

    def test_malformed_names_are_400_and_never_reach_the_backend(self):
        for line in ("X-Remote-User : admin", "X-Remote-User\t: admin", " X-Remote-User: admin",
                     "X-Remote-User: admin\rX-Foo: y", "X Remote User: admin", "X-Remote-User\x00: admin"):
            with self.subTest(line=line):
                r = send(["GET /open/x HTTP/1.1", "Host: localhost", line])
                self.assertEqual(r.status, 400)
                self.assertNotIn(b'"headers"', r.body)

    def test_every_repetition_and_case_of_an_identity_name_is_removed(self):
        r = echoed(send(["GET /open/x HTTP/1.1", "Host: localhost", "x-REMOTE-user: admin", "X-Remote-User: admin2",
                         "X-ARR-CLIENTCERT: Zm9v", "x-arr-clientcert: YmFy", "X-Remote-User:admin3",
                         "Connection: X-Forwarded-For, X-Remote-Auth-Type"]))
        self.assertEqual(values(r, "X-Remote-User"), [])
        self.assertEqual(values(r, "X-ARR-ClientCert"), [])
        self.assertEqual(values(r, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(values(r, "X-Remote-Auth-Type"), ["Anonymous"])


class ForwardedPath(unittest.TestCase):
    """Item 3: the backend gets the path the policy matched, re-encoded, or the request is 400."""

    def path_of(self, target, **kw):
        return echoed(send([f"GET {target} HTTP/1.1", "Host: localhost"], **kw))["path"]

    def status(self, target):
        return send([f"GET {target} HTTP/1.1", "Host: localhost"]).status

    def test_constructs_that_backends_resolve_elsewhere_are_refused(self):
        for target in ("/app/x/..;/secure/x", "/app/x/..;jsessionid=1/secure/x", "/app/x/.;/secure/x",
                       "/app/secure./x", "/app/secure%2e/x", "/app/secure%20/x", "/app/secure.;x/y",
                       "/app/x/%252e%252e/secure/x", "/app/%252fsecure/x", "/app/public#/../secure/x",
                       "/app/x?a=1#/../secure", "/app/x/%2e%2e;/secure/x"):
            with self.subTest(target=target):
                self.assertEqual(self.status(target), 400)

    def test_normalised_path_is_what_the_policy_and_the_backend_see(self):
        # Each of these is /app/secure to the policy: without a certificate, 403.7 or 401.
        for target in ("/app//secure/x", "/app/./secure/x", "/app/x/../secure/x", "/app/x/%2e%2e/secure/x",
                       "/app/x/%2E%2E%2Fsecure/x", "/app/%73ecure/x", "/app/x\\..\\secure/x", "/app/x%5c..%5csecure/x",
                       "/APP/SECURE/x"):
            with self.subTest(target=target):
                self.assertIn(self.status(target), (401, 403))
        self.assertEqual(self.path_of("/app/./x/../y//z/"), "/app/y/z/")
        self.assertEqual(self.path_of("/app/a%2fb"), "/app/a/b")
        self.assertEqual(self.path_of("/app/sp%20ace/caf%C3%A9"), "/app/sp%20ace/caf%C3%A9")
        self.assertEqual(self.path_of("/app/%7Euser/(a)!$&'*+,=:@-._~"), "/app/~user/(a)!$&'*+,=:@-._~")
        self.assertEqual(self.path_of("/app/hash%23/q%3Fx"), "/app/hash%23/q%3Fx")

    def test_path_parameters_reach_the_backend_encoded(self):
        # The policy matched the segment "secure;jsessionid=1" (not /app/secure): the backend must
        # not strip ";jsessionid=1" and land on /app/secure.
        self.assertEqual(self.path_of("/app/secure;jsessionid=1/x"), "/app/secure%3Bjsessionid=1/x")

    def test_query_is_forwarded_unchanged(self):
        self.assertEqual(self.path_of("/app/x?q=a%20b&p=..;/secure&e=%2e%2e"), "/app/x?q=a%20b&p=..;/secure&e=%2e%2e")
        self.assertEqual(self.path_of("/app/x?"), "/app/x?")

    def test_validated_request_gets_the_normalised_path_too(self):
        self.assertEqual(self.path_of("/app/x/../secure//y", user="alice"), "/app/secure/y")

    def test_static_location_and_non_origin_targets(self):
        r = send(["GET /static/ HTTP/1.1", "Host: localhost"])
        self.assertEqual((r.status, r.body), (200, b"static here\n"))
        for head in (["OPTIONS * HTTP/1.1", "Host: localhost"], ["CONNECT localhost:443 HTTP/1.1", "Host: localhost"],
                     ["GET ftp://localhost/app/x HTTP/1.1", "Host: localhost"],
                     ["GET https://user@localhost/app/x HTTP/1.1", "Host: localhost"]):
            with self.subTest(head=head[0]):
                r = send(head)
                self.assertEqual(r.status, 400)
                self.assertNotIn(b'"headers"', r.body)  # certgate answered, not the backend


class HostChecks(unittest.TestCase):
    """Item 4: one valid Host; trailing dot; plain-HTTP routing; absolute-form authority."""

    def test_trailing_dot_names_the_same_site(self):
        for host in ("site-a.test.", "SITE-A.TEST.", "site-a.test.:443"):
            with self.subTest(host=host):
                self.assertEqual(send(["GET /app/x HTTP/1.1", f"Host: {host}"]).status, 421)

    def test_http_10_without_host_stays_on_the_sni_site(self):
        r = send(["GET / HTTP/1.0"], sni="site-a.test")
        self.assertEqual((r.status, r.body), (200, b"<h1>hello from /public</h1>\n"))

    def test_more_than_one_host_is_400(self):
        for extra in (["Host: localhost"], ["host: site-a.test"], ["HOST: localhost"]):
            with self.subTest(extra=extra):
                r = send(["GET /app/x HTTP/1.1", "Host: localhost"] + extra)
                self.assertEqual(r.status, 400)
                self.assertNotIn(b'"headers"', r.body)

    def test_invalid_host_values_are_400(self):
        for host in ("localhost, site-a.test", "a b", "user@localhost", "localhost:44x", "[::1", "localhost/x",
                     "localhost:123456"):
            with self.subTest(host=host):
                self.assertEqual(send(["GET /app/x HTTP/1.1", f"Host: {host}"]).status, 400)

    def test_preserved_host_and_forwarded_host_are_the_one_validated(self):
        r = echoed(send(["GET /app/x HTTP/1.1", "Host: LocalHost:443"]))
        self.assertEqual(values(r, "X-Forwarded-Host"), ["LocalHost:443"])
        self.assertEqual(values(r, "Host"), [f"127.0.0.1:{BACKEND}"])

    def test_absolute_form_authority_replaces_host(self):
        # RFC 9112 §3.2.2: the target's authority, not Host, names the site.
        r = send(["GET https://site-a.test/app/x HTTP/1.1", "Host: localhost"])
        self.assertEqual(r.status, 421)
        r = echoed(send(["GET https://localhost/app/x?y=1 HTTP/1.1", "Host: site-a.test"]))
        self.assertEqual(r["path"], "/app/x?y=1")
        self.assertEqual(values(r, "X-Forwarded-Host"), ["localhost"])
        r = echoed(send(["GET HTTP://LOCALHOST. HTTP/1.1", "Host: site-a.test"]))
        self.assertEqual(r["path"], "/")
        send(["GET https://localhost/app/logged?absolute=1 HTTP/1.1", "Host: localhost"])
        self.assertEqual(server.log_entry("absolute=1")["cs-uri-stem"], "/app/logged")

    def test_plain_http_routes_every_request_by_its_host(self):
        c = Connection(H, tls=False, sni="a.test")
        try:
            a = raw_request(c, ["GET / HTTP/1.1", "Host: a.test"])
            self.assertEqual((a.status, a.body), (200, b"<h1>hello from /</h1>\n"))
            # Same connection, other Host: site PlainB (root www/public, /api proxied).
            b = raw_request(c, ["GET / HTTP/1.1", "Host: b.test."])
            self.assertEqual((b.status, b.body), (200, b"<h1>hello from /public</h1>\n"))
            proxied = echoed(raw_request(c, ["GET http://b.test/api HTTP/1.1", "Host: a.test"]))
            self.assertEqual(proxied["path"], "/api")
            self.assertEqual(values(proxied, "X-Forwarded-Proto"), ["http"])
            nobody = raw_request(c, ["GET / HTTP/1.1", "Host: c.test"])
            self.assertEqual(nobody.status, 400)
        finally:
            c.close()


class XfccQuoting(unittest.TestCase):
    """Item 5: SAN and Subject values with ';', ',' or '"' cannot add elements or pairs."""

    def test_delimiters_in_san_values_are_quoted(self):
        r = echoed(send(["GET /echo HTTP/1.1", "Host: site-b.test"], user="xfcc", cert_dir=TMP, sni="site-b.test"))
        self.assertEqual(values(r, "X-Remote-User"), ["xfccuser"])
        xfcc = values(r, "X-Forwarded-Client-Cert")[0]
        self.assertIn(';URI="urn:a;Hash=forged"', xfcc)
        self.assertIn(';URI="urn:b,By=spiffe://evil"', xfcc)
        self.assertIn(';DNS="c\\"d.test"', xfcc)
        self.assertIn(";DNS=plain.test", xfcc)
        self.assertIn(';Subject="', xfcc)
        # Parsed as Envoy does, there is one element and one Hash.
        self.assertEqual(len(split_xfcc(xfcc, ",")), 1)
        pairs = split_xfcc(xfcc, ";")
        self.assertEqual([p.split("=", 1)[0] for p in pairs].count("Hash"), 1)
        self.assertNotIn("By", [p.split("=", 1)[0] for p in pairs])


def split_xfcc(value, sep):
    """Splits on `sep` outside double quotes (backslash escapes inside), as Envoy's parser does."""
    parts, cur, quoted, escaped = [], "", False, False
    for ch in value:
        if escaped:
            cur, escaped = cur + ch, False
        elif ch == "\\" and quoted:
            cur, escaped = cur + ch, True
        elif ch == '"':
            cur, quoted = cur + ch, not quoted
        elif ch == sep and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


if __name__ == "__main__":
    unittest.main()
