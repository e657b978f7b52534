"""A real Tomcat behind certgate (issue 18 items 8 and 9): Debian's tomcat10, started by the test
with its own CATALINA_BASE on a loopback port, SSLValve configured and a JSP that prints what the
servlet API sees. certgate proxies with client_cert = "pem": the JSP finds alice's certificate in
jakarta.servlet.request.X509Certificate and her mapped user in X-Remote-User; an ssl_client_cert a
client writes itself (any spelling) never reaches Tomcat. One Tomcat for the whole file."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, free_port, pki  # noqa: E402

CATALINA_HOME = "/usr/share/tomcat10"
TOMCAT = free_port()
P = free_port()

JSP = """<%@ page contentType="text/plain; charset=UTF-8" %><%
java.security.cert.X509Certificate[] certs =
    (java.security.cert.X509Certificate[]) request.getAttribute("jakarta.servlet.request.X509Certificate");
out.print("subject=" + (certs == null ? "none" : certs[0].getSubjectX500Principal().getName()) + "\\n");
out.print("certs=" + (certs == null ? 0 : certs.length) + "\\n");
out.print("remote_user=" + request.getRemoteUser() + "\\n");
out.print("x_remote_user=" + request.getHeader("X-Remote-User") + "\\n");
java.util.Enumeration<String> names = request.getHeaderNames();
while (names.hasMoreElements()) {
  String n = names.nextElement();
  if (n.toLowerCase().replace('-', '_').startsWith("ssl_client_cert"))
    out.print("header " + n + "=" + request.getHeader(n) + "\\n");
}
%>"""


def java_home():
    java = shutil.which("java")
    return os.path.dirname(os.path.dirname(os.path.realpath(java))) if java else None


def start_tomcat():
    base = tempfile.mkdtemp(prefix="certgate-tomcat-")
    for d in ("conf", "logs", "temp", "work", "webapps/ROOT"):
        os.makedirs(os.path.join(base, d))
    for f in ("web.xml", "catalina.properties", "logging.properties"):
        shutil.copy(os.path.join("/etc/tomcat10", f), os.path.join(base, "conf", f))
    with open(os.path.join(base, "conf", "server.xml"), "w") as f:
        f.write(textwrap.dedent(f"""\
            <?xml version="1.0" encoding="UTF-8"?>
            <Server port="-1" shutdown="SHUTDOWN">
              <Service name="Catalina">
                <Connector port="{TOMCAT}" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000"/>
                <Engine name="Catalina" defaultHost="localhost">
                  <!-- reads ssl_client_cert, as certgate's client_cert = "pem" sends it -->
                  <Valve className="org.apache.catalina.valves.SSLValve"/>
                  <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false"/>
                </Engine>
              </Service>
            </Server>
            """))
    with open(os.path.join(base, "webapps/ROOT/whoami.jsp"), "w") as f:
        f.write(JSP)
    env = dict(os.environ, CATALINA_HOME=CATALINA_HOME, CATALINA_BASE=base, CATALINA_TMPDIR=os.path.join(base, "temp"),
               JAVA_HOME=java_home() or "", CATALINA_PID="")
    log = open(os.path.join(base, "logs", "console.log"), "w")
    proc = subprocess.Popen([os.path.join(CATALINA_HOME, "bin", "catalina.sh"), "run"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while True:
        if proc.poll() is not None:
            with open(os.path.join(base, "logs", "console.log")) as f:
                raise RuntimeError("tomcat exited: " + f.read()[-3000:])
        try:
            socket.create_connection(("127.0.0.1", TOMCAT), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                raise RuntimeError("tomcat did not listen within 120 s")
            time.sleep(0.2)
    return proc, base


SITE = f"""
[[sites]]
name = "Java"
id = 1
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert"]
anonymous = true
backend = "http://127.0.0.1:{TOMCAT}"
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  revocation = "off"
  [sites.mapping]
  [[sites.mapping.one_to_one]]
  user = "alice"
  certificate = "@PKI@/alice.pem"
  [sites.forward]
  client_cert = "pem"
  # '_' names are forwarded here, so only the identity-header strip keeps a forged one out
  underscores_in_headers = true
"""


def one_line_pem(path):
    with open(path) as f:
        return f.read().strip().replace("\n", " ")


@unittest.skipUnless(os.path.exists(os.path.join(CATALINA_HOME, "bin", "catalina.sh")) or os.environ.get("CI") == "true",
                     "Debian tomcat10 is not installed (scripts/install-deps.sh installs it)")
class TomcatSeesTheCertificate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tomcat, cls.base = start_tomcat()
        try:
            cls.srv = Server(SITE).start()
        except BaseException:
            cls.stop_tomcat()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.stop_tomcat()

    @classmethod
    def stop_tomcat(cls):
        os.killpg(cls.tomcat.pid, signal.SIGTERM)
        try:
            cls.tomcat.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(cls.tomcat.pid, signal.SIGKILL)
            cls.tomcat.wait()

    def whoami(self, user=None, headers=None):
        r = Connection(P, user=user, timeout=60).request("/whoami.jsp", headers=headers)
        self.assertEqual(r.status, 200, r.text[:500])
        return dict(l.split("=", 1) for l in r.text.splitlines() if "=" in l and not l.startswith("header "))\
            , [l for l in r.text.splitlines() if l.startswith("header ")]

    def test_alice_certificate_and_user_reach_the_jsp(self):
        seen, headers = self.whoami("alice")
        self.assertIn("CN=alice,OU=Engineering,O=Certgate Demo,C=US", seen["subject"], seen)
        self.assertIn("O=Certgate Demo", seen["subject"])
        self.assertEqual(seen["x_remote_user"], "alice")
        # Tomcat has no valve that logs a user in from a header: the servlet reads X-Remote-User
        # (or the signed assertion, docs/proxy.md); getRemoteUser() stays null.
        self.assertEqual(seen["remote_user"], "null")
        self.assertEqual(len(headers), 2, headers)
        self.assertTrue(headers[0].startswith("header ssl_client_cert=-----BEGIN CERTIFICATE----- MII"), headers)
        self.assertEqual(headers[0].split("=", 1)[1], one_line_pem(pki("alice.pem")))
        # what alice sent after her certificate (SSLValve reads only the leaf)
        self.assertEqual(headers[1], "header ssl_client_cert_chain=" + one_line_pem(pki("issuing-ca.pem")))

    def test_forged_header_never_reaches_tomcat(self):
        forged = one_line_pem(pki("bob.pem"))
        spoof = {"ssl_client_cert": forged, "SSL-Client-Cert": forged, "Ssl_Client_Cert_Chain": forged}
        # anonymous: no certificate at all, the forged one is dropped and SSLValve sees nothing
        seen, headers = self.whoami(None, spoof)
        self.assertEqual(seen["subject"], "none")
        self.assertEqual(seen["x_remote_user"], "null")
        self.assertEqual(headers, [])
        # alice with bob's certificate in a header: Tomcat sees alice's, once
        seen, headers = self.whoami("alice", spoof)
        self.assertIn("CN=alice,", seen["subject"])
        self.assertEqual([h.split("=", 1)[0] for h in headers], ["header ssl_client_cert", "header ssl_client_cert_chain"])
        self.assertNotIn(forged, "".join(headers))


if __name__ == "__main__":
    unittest.main()
