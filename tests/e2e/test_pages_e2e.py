"""Error pages a person can act on (issue 20), over real sockets: each page's title band, sentence,
things to try and details; the request id on the page, in X-Request-Id and in the W3C log with the
reason (x-request-id, x-reason); plain text and JSON by Accept; what a remote user (detailed
errors off) sees; Cache-Control on authenticated answers, per location; the site's own pages
([sites.error_pages]) and import-iis carrying <httpErrors> over; the configured intermediates
named in the CA list (openssl s_client); the impostor CA's reason, the same in `verify`."""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import CERTGATE, Connection, Server, free_port, get, pki, run  # noqa: E402
from listeners import ConnectionServer, read_request  # noqa: E402

P, P_OTHER, DEAD, SILENT, P_CA, P_CA_OFF, APP, P_HTTP = (free_port() for _ in range(8))
TMP = tempfile.mkdtemp(prefix="certgate-pages-")
with open(os.path.join(TMP, "not-mapped.html"), "w") as f:
    f.write("<!DOCTYPE html><p>Our own page: ask the help desk to map your certificate.</p>\n")
with open(os.path.join(TMP, "any-404.html"), "w") as f:
    f.write("<!DOCTYPE html><p>Our own page for every 404.</p>\n")

FIELDS = '''  [sites.log]
  fields = ["date", "time", "cs-uri-stem", "cs-uri-query", "cs-username", "sc-status", "sc-substatus",
            "sc-win32-status", "x-request-id", "x-reason"]
'''

SITES = f"""
[[sites]]
name = "Main"
id = 1
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [[sites.bindings]]
  listen = "127.0.0.1:{P_HTTP}"
  protocol = "http"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  [sites.mapping]
  [[sites.mapping.many_to_one]]
  name = "Deny otto"
  permission = "deny"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "CN"
    match = "otto"
  [[sites.mapping.one_to_one]]
  user = "alice"
  certificate = "@PKI@/alice.pem"
  [[sites.mapping.one_to_one]]
  user = "dave"
  certificate = "@PKI@/dave.pem"
  [sites.basic]
  enabled = true
  users_file = "users.txt"
  [sites.proxy]
  connect_timeout_ms = 1000
  read_timeout_ms = 500
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.locations]]
  path = "/members"
  anonymous = false
  [[sites.locations]]
  path = "/admin/readers"
  allow_users = ["someone-else"]
  [[sites.locations]]
  path = "/accept"
  ssl_flags = ["Ssl", "SslNegotiateCert"]
  authenticated_cache_control = "private, max-age=60"
  [[sites.locations]]
  path = "/accept/nocache"
  authenticated_cache_control = ""
  [[sites.locations]]
  path = "/dead"
  backend = "http://127.0.0.1:{DEAD}"
  [[sites.locations]]
  path = "/silent"
  backend = "http://127.0.0.1:{SILENT}"
  [[sites.locations]]
  path = "/app"
  backend = "http://127.0.0.1:{APP}"
  ssl_flags = ["Ssl", "SslNegotiateCert"]
  [sites.error_pages]
  "403.16" = "{TMP}/not-mapped.html"
  "404" = "{TMP}/any-404.html"
{FIELDS}
[[sites]]
name = "Other"
id = 2
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  host = "other.test"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"

[[sites]]
name = "Names intermediates"
id = 3
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P_CA}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  intermediates = ["@PKI@/issuing-ca.pem"]
  revocation = "off"

[[sites]]
name = "Root only"
id = 4
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P_CA_OFF}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  intermediates = ["@PKI@/issuing-ca.pem"]
  revocation = "off"
  ca_list_intermediates = false
"""


class Silent(ConnectionServer):
    """A backend that reads the request and never answers (until the test ends)."""

    def __init__(self, port):
        super().__init__(port)
        self.done = threading.Event()

    def serve(self, conn):
        with conn:
            read_request(conn.makefile("rb"))
            self.done.wait(30)


class App(ConnectionServer):
    """A backend answering 200, with its own Cache-Control when the path asks for one."""

    def serve(self, conn):
        with conn:
            f = conn.makefile("rb")
            while True:
                line, _, _ = read_request(f)
                if line is None:
                    return
                own = b"Cache-Control: max-age=5\r\n" if "own-cc" in line else b""
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n" + own + b"\r\napp")


server = remote = silent = app = None


def setUpModule():
    global server, remote, silent, app
    silent = Silent(SILENT)
    silent.start()
    app = App(APP)
    app.start()
    limits = "max_body_bytes = 1000"
    server = Server(SITES, server_extra=limits)
    # The same sites for a remote user: detailed errors off.
    remote = Server(SITES.replace(str(P), str(free_port())).replace(str(P_CA), str(free_port()))
                    .replace(str(P_HTTP), str(free_port()))
                    .replace(str(P_CA_OFF), str(free_port())), server_extra=limits)
    remote.edit_config('detailed_errors = "always"', 'detailed_errors = "never"')
    for srv in (server, remote):
        r = subprocess.run([CERTGATE, "users", "add", "-f", os.path.join(srv.dir, "users.txt"), "carl",
                            "--password-stdin"], input="carl-pw\n", capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    server.start()
    remote.start()


def tearDownModule():
    silent.done.set()
    silent.stop()
    app.stop()
    assert server.stop() == 0
    assert remote.stop() == 0
    shutil.rmtree(TMP, ignore_errors=True)


def port_of(srv):
    with open(srv.config) as f:
        return int(re.search(r'listen = "127\.0\.0\.1:(\d+)"', f.read()).group(1))


def log_by_id(srv, rid, site_id=1, timeout=3.0):
    deadline = time.time() + timeout
    while True:
        fields = None
        for line in srv.log_lines(site_id):
            if line.startswith("#Fields: "):
                fields = line[len("#Fields: "):].split(" ")
            elif not line.startswith("#") and fields:
                entry = dict(zip(fields, line.split(" ")))
                if entry.get("x-request-id") == rid:
                    return entry
        if time.time() > deadline:
            raise AssertionError(f"no W3C line with x-request-id {rid}")
        time.sleep(0.1)


def page_id(text):
    m = re.search(r'id="request-id">([^<]+)<', text)
    return m.group(1) if m else None


class Pages(unittest.TestCase):
    """Each answer's page: what the person reads, and the id that finds the reason in the log."""

    def check(self, r, query, code, title, sentence, try_text, site_id=1):
        self.assertEqual(r.code(), code)
        text = r.text
        self.assertIn(f"<h1>HTTP Error {code} - ", text)
        self.assertIn(title, text)
        self.assertIn(sentence, text)
        self.assertIn("Things you can try", text)
        self.assertIn(try_text, text)
        for needed in ('<html lang="en">', '<meta name="viewport"', "<style>"):
            self.assertIn(needed, text)
        self.assertNotRegex(text, r'(src|href)=')  # self-contained: nothing fetched from elsewhere
        rid = page_id(text)
        self.assertTrue(rid)
        self.assertEqual(r.headers.get("x-request-id"), rid)
        # The help desk's way: the id on the page finds the line, and the reason, in the log.
        entry = log_by_id(server, rid, site_id)
        if entry["cs-uri-query"] != "-":
            self.assertEqual(entry["cs-uri-query"], query)
        self.assertNotEqual(entry["x-reason"], "-")
        return entry

    def test_403_4_ssl_required(self):
        r = get(P_HTTP, "/?p4034", tls=False, host="localhost")
        self.check(r, "p4034", "403.4", "SSL required", "only be viewed over a secure (https) connection",
                   "starting with https://")
        self.assertIn("<th>Requested URL</th><td>http://localhost/?p4034</td>", r.text)

    def test_403_12_mapper_denied(self):
        r = get(P, "/admin/?p40312", user="otto")
        self.check(r, "p40312", "403.12", "Mapper denied access", "does not let your certificate in",
                   "restart the browser and choose it")

    def test_403_7_lists_what_to_check_and_the_accepted_issuers(self):
        r = get(P, "/admin/?p4037")
        e = self.check(r, "p4037", "403.7", "Client certificate required",
                       "your browser did not send one", "has not expired")
        for text in ("authority that issued yours is installed too", "start it again",
                     "Issuers this site accepts", "CN=Certgate Demo Root CA, O=Certgate Demo, C=US"):
            self.assertIn(text, r.text)
        self.assertIn("client+did+not+send+one", e["x-reason"])

    def test_403_13_revoked(self):
        r = get(P, "/admin/?p40313", user="carol")
        e = self.check(r, "p40313", "403.13", "Client certificate revoked", "has been revoked by its issuer",
                       "ask whoever issued".capitalize())
        self.assertIn("0x80092010 (CRYPT_E_REVOKED)", r.text)
        self.assertIn("was+revoked", e["x-reason"])

    def test_403_16_unmapped_is_titled_not_mapped_and_shows_the_details(self):
        r = get(P, "/admin/?p40316", user="bob")
        e = self.check(r, "p40316", "403.16", "Client certificate is not mapped to an account",
                       "not linked to an account", "map your certificate to your account")
        self.assertNotIn("untrusted", r.text)
        for label, value in (("Requested URL", "https://localhost/admin/?p40316"), ("Site", "Main"),
                             ("Location", "/admin"), ("ssl_flags", "Ssl,SslNegotiateCert,SslRequireCert"),
                             ("Certificate subject", "CN=bob, OU=Staff, O=Certgate Demo, C=US"),
                             ("Certificate issuer", "CN=Certgate Demo Issuing CA"),
                             ("Certificate serial", ""), ("Certificate validity", " UTC to "),
                             ("Error code", "0x8007052e (ERROR_LOGON_FAILURE)")):
            self.assertRegex(r.text, f"<th>{label}</th><td>[^<]*{re.escape(value)}")
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"]), ("403", "16", "1326"))
        self.assertIn("no+one-to-one+or+many-to-one+mapping", e["x-reason"])

    def test_403_16_impostor_ca_names_both_key_identifiers(self):
        # mallory's issuer has exactly the trusted root's name, but another key.
        r = get(P, "/admin/?impostor", user="mallory")
        e = self.check(r, "impostor", "403.16", "Client certificate is untrusted or invalid",
                       "does not trust", "Choose another certificate")
        self.assertIn("a CA with this name is trusted, but its key did not sign", r.text)
        ids = re.findall(r"(?:[0-9A-F]{2}:){19}[0-9A-F]{2}", r.text)
        self.assertEqual(len(set(ids)), 2, r.text)
        self.assertNotIn("is not in this site&#39;s trusted list", r.text)
        self.assertIn("its+key+did+not+sign", e["x-reason"])

    def test_403_17_expired(self):
        r = get(P, "/admin/?p40317", user="dave")
        self.check(r, "p40317", "403.17", "Client certificate has expired or is not yet valid",
                   "has expired or is not valid yet", "Renew the certificate")

    def test_401_3_access_denied(self):
        r = get(P, "/admin/readers/?p4013", user="alice")
        e = self.check(r, "p4013", "401.3", "Unauthorized due to ACL on resource",
                       "you are not allowed to see this page", "Ask the site&#39;s administrator for access")
        self.assertIn("<th>Logon user</th><td>alice</td>", r.text)
        self.assertIn("<th>Logon method</th><td>Certificate</td>", r.text)
        self.assertEqual(e["cs-username"], "alice")

    def test_401_2_no_credentials(self):
        r = get(P, "/members/?p4012")
        e = self.check(r, "p4012", "401.2", "Unauthorized", "", "Things you can try")
        self.assertIn("Basic", r.headers.get("www-authenticate", ""))
        self.assertEqual((e["sc-status"], e["sc-substatus"]), ("401", "2"))

    def test_401_1_wrong_password(self):
        bad = "Basic " + base64.b64encode(b"carl:Zq9-not-carls-pw").decode()
        r = get(P, "/members/?p4011", headers={"Authorization": bad})
        e = self.check(r, "p4011", "401.1", "Logon failed", "could not be logged on", "Check the user name and password")
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"]), ("401", "1", "1326"))
        self.assertNotIn("Zq9-not-carls-pw", r.text)  # the password never comes back on the page

    def test_421_misdirected(self):
        c = Connection(P)
        try:
            r = c.request("/?p421", host="other.test")
        finally:
            c.close()
        self.check(r, "p421", "421", "This connection was made for another site",
                   "over a connection made for another site", "Reload the page")

    def test_413_body_too_large(self):
        c = Connection(P)
        try:
            r = c.request("/?p413", method="POST", body=b"x" * 2000)
        finally:
            c.close()
        self.check(r, "p413", "413", "Request Entity Too Large", "larger than this server accepts",
                   "Send a smaller file")

    def test_502_3_and_504(self):
        r = get(P, "/dead/?p5023")
        self.check(r, "p5023", "502.3", "Bad Gateway", "could not reach the application",
                   "Try again in a few minutes")
        self.assertIn("0x80072efd (ERROR_WINHTTP_CANNOT_CONNECT)", r.text)
        r = get(P, "/silent/?p504")
        self.check(r, "p504", "504", "did not answer in time", "did not answer in time",
                   "Try again in a few minutes")


class Formats(unittest.TestCase):
    def test_plain_text_when_asked(self):
        r = get(P, "/admin/?text", user="bob", headers={"Accept": "text/plain"})
        self.assertEqual(r.headers["content-type"], "text/plain; charset=utf-8")
        self.assertTrue(r.text.startswith("HTTP Error 403.16 - Forbidden\nClient certificate is not mapped"))
        self.assertIn("\nThings you can try:\n  - Ask the site's administrator", r.text)
        self.assertIn("Error code: 0x8007052e (ERROR_LOGON_FAILURE)", r.text)
        rid = re.search(r"Request id: (\S+)", r.text).group(1)
        self.assertEqual(server.log_entry("text")["x-request-id"], rid)

    def test_json_when_asked(self):
        r = get(P, "/admin/?json", user="carol", headers={"Accept": "application/json, text/html;q=0.5"})
        self.assertEqual(r.headers["content-type"], "application/json")
        body = json.loads(r.text)
        self.assertEqual((body["status"], body["substatus"], body["win32"]), (403, 13, 0x80092010))
        self.assertIn("was revoked", body["reason"])
        self.assertTrue(body["things_to_try"])
        self.assertEqual(body["details"]["site"], "Main")
        self.assertEqual(body["details"]["certificate_subject"], "CN=carol, OU=Staff, O=Certgate Demo, C=US")
        self.assertEqual(body["details"]["error_code"], "0x80092010 (CRYPT_E_REVOKED)")
        self.assertEqual(server.log_entry("json")["x-request-id"], body["request_id"])

    def test_html_when_html_comes_first(self):
        r = get(P, "/admin/?htmlfirst", user="carol",
                headers={"Accept": "text/html,application/json;q=0.9,text/plain;q=0.8"})
        self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8")
        self.assertIn("<h1>HTTP Error 403.13 - Forbidden</h1>", r.text)


class RemoteUser(unittest.TestCase):
    """detailed_errors = "never": the title, the sentence, the things to try and the request id;
    nothing internal. The site's own pages where it has one (IIS DetailedLocalOnly)."""

    def test_html_shows_nothing_internal(self):
        r = get(port_of(remote), "/admin/?remote", user="carol")
        self.assertEqual(r.code(), "403.13")
        for shown in ("Client certificate revoked", "has been revoked by its issuer", "Things you can try"):
            self.assertIn(shown, r.text)
        for hidden in ("Reason", "CN=carol", "Certificate subject", "0x8", "Most likely causes", "Site</th>",
                       "ssl_flags", "/admin"):
            self.assertNotIn(hidden, r.text)
        rid = page_id(r.text)
        entry = remote.log_entry("remote")
        self.assertEqual(entry["x-request-id"], rid)
        self.assertIn("was+revoked", entry["x-reason"])  # the help desk finds the reason by the id

    def test_json_and_text_show_nothing_internal(self):
        r = get(port_of(remote), "/admin/?remotejson", user="carol", headers={"Accept": "application/json"})
        body = json.loads(r.text)
        self.assertEqual(set(body), {"status", "substatus", "title", "message", "things_to_try", "request_id"})
        r = get(port_of(remote), "/admin/?remotetext", user="carol", headers={"Accept": "text/plain"})
        self.assertNotIn("CN=carol", r.text)
        self.assertNotIn("Reason", r.text)
        self.assertIn("Request id: ", r.text)

    def test_the_sites_own_page_by_substatus_then_by_status(self):
        r = get(port_of(remote), "/admin/?own", user="bob")
        self.assertEqual((r.status, r.text), (403, "<!DOCTYPE html><p>Our own page: ask the help desk to map your certificate.</p>\n"))
        self.assertTrue(r.headers["x-request-id"])
        self.assertEqual(remote.log_entry("own")["sc-substatus"], "16")
        r = get(port_of(remote), "/no-such-page?own404")
        self.assertEqual((r.status, r.text), (404, "<!DOCTYPE html><p>Our own page for every 404.</p>\n"))
        # Other answers keep certgate's page.
        self.assertIn("HTTP Error 403.7", get(port_of(remote), "/admin/?own7").text)
        # JSON clients still get JSON; detailed clients the detailed page.
        r = get(port_of(remote), "/admin/?ownjson", user="bob", headers={"Accept": "application/json"})
        self.assertEqual(json.loads(r.text)["substatus"], 16)
        self.assertIn("Client certificate is not mapped", get(P, "/admin/?owndetailed", user="bob").text)


class CacheControl(unittest.TestCase):
    def test_authenticated_answers_are_private_and_revalidated(self):
        c = Connection(P, user="alice")
        try:
            r = c.request("/admin/?cc")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["cache-control"], "private, no-cache")
            # Revalidation is cheap and keeps the policy.
            r = c.request("/admin/?cc304", headers={"If-None-Match": r.headers["etag"]})
            self.assertEqual(r.status, 304)
            self.assertEqual(r.headers["cache-control"], "private, no-cache")
            # An anonymous answer on the same connection carries none.
            r = c.request("/?anon")
            self.assertEqual(r.status, 200)
            self.assertNotIn("cache-control", r.headers)
        finally:
            c.close()

    def test_per_location(self):
        self.assertEqual(get(P, "/accept/?cc60", user="alice").headers["cache-control"], "private, max-age=60")
        r = get(P, "/accept/nocache/?ccnone", user="alice")
        self.assertEqual(r.status, 404)  # no such folder: certgate's page, never cached
        self.assertEqual(r.headers["cache-control"], "no-store")
        os.makedirs(os.path.join(server.dir, "www", "accept", "nocache"), exist_ok=True)
        with open(os.path.join(server.dir, "www", "accept", "nocache", "index.html"), "w") as f:
            f.write("x\n")
        r = get(P, "/accept/nocache/?ccnone2", user="alice")
        self.assertEqual(r.status, 200)
        self.assertNotIn("cache-control", r.headers)
        # Optional certificate, none sent: anonymous, so no Cache-Control.
        self.assertNotIn("cache-control", get(P, "/accept/?ccanon").headers)


    def test_proxied_answers_get_it_unless_the_backend_says_otherwise(self):
        r = get(P, "/app/x?proxcc", user="alice")
        self.assertEqual((r.status, r.body), (200, b"app"))
        self.assertEqual(r.headers["cache-control"], "private, no-cache")
        self.assertEqual(get(P, "/app/own-cc?proxown", user="alice").headers["cache-control"], "max-age=5")
        self.assertNotIn("cache-control", get(P, "/app/x?proxanon").headers)


class CaList(unittest.TestCase):
    def names(self, port):
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost"],
                           input="", capture_output=True, text=True, timeout=20)
        m = re.search(r"Acceptable client certificate CA names\n(.*?)\n(?:Requested|Client Certificate Types)",
                      r.stdout, re.S)
        self.assertIsNotNone(m, r.stdout)
        return m.group(1)

    def test_configured_intermediates_are_named_by_default(self):
        names = self.names(P_CA)
        self.assertIn("CN = Certgate Demo Root CA", names)
        self.assertIn("CN = Certgate Demo Issuing CA", names)

    def test_and_not_when_switched_off(self):
        names = self.names(P_CA_OFF)
        self.assertIn("CN = Certgate Demo Root CA", names)
        self.assertNotIn("Issuing CA", names)


class SameReasonEverywhere(unittest.TestCase):
    def test_verify_and_explain_give_the_impostor_reason(self):
        r = run(["verify", "-c", server.config, "--site", "Main", pki("mallory-chain.pem")])
        self.assertEqual(r.returncode, 1)
        self.assertIn("a CA with this name is trusted, but its key did not sign", r.stdout + r.stderr)
        r = run(["explain", "-c", server.config, "--site", "Main", "--path", "/admin/", pki("mallory-chain.pem")])
        self.assertIn("a CA with this name is trusted, but its key did not sign", r.stdout + r.stderr)


class Config(unittest.TestCase):
    def check_config(self, extra):
        srv = Server(SITES.replace("[sites.error_pages]", "[sites.error_pages]\n" + extra, 1))
        open(os.path.join(srv.dir, "users.txt"), "w").close()  # [sites.basic]'s, no user needed here
        try:
            return run(["check-config", "-c", srv.config])
        finally:
            shutil.rmtree(srv.dir, ignore_errors=True)

    def test_bad_keys_are_errors_with_their_place(self):
        r = self.check_config('"403.x" = "a.html"')
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"certgate\.toml:\d+:\d+: sites\[0\]\.error_pages\.403\.x: expected a status")
        r = self.check_config('"302" = "a.html"')
        self.assertIn("(400-599)", r.stderr)

    def test_missing_page_is_a_warning(self):
        r = self.check_config('"500" = "no-such-page.html"')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("certgate's own page answers instead", r.stdout + r.stderr)


class ImportIis(unittest.TestCase):
    def test_http_errors_file_entries_and_what_is_left_out(self):
        d = tempfile.mkdtemp(prefix="certgate-pages-iis-")
        ah = os.path.join(d, "applicationHost.config")
        with open(ah, "w") as f:
            f.write(r"""<?xml version="1.0" encoding="UTF-8"?>
<configuration>
  <system.applicationHost>
    <sites>
      <site name="Shop" id="4">
        <application path="/"><virtualDirectory path="/" physicalPath="C:\sites\shop" /></application>
        <bindings><binding protocol="https" bindingInformation="*:443:" /></bindings>
      </site>
    </sites>
  </system.applicationHost>
  <location path="Shop">
    <system.webServer>
      <httpErrors errorMode="DetailedLocalOnly">
        <remove statusCode="404" subStatusCode="-1" />
        <error statusCode="404" prefixLanguageFilePath="C:\errors" path="404.htm" responseMode="File" />
        <error statusCode="403" subStatusCode="16" path="pages\not-mapped.htm" responseMode="File" />
        <error statusCode="403" subStatusCode="7" path="..\..\secret.txt" responseMode="File" />
        <error statusCode="500" path="/oops.aspx" responseMode="ExecuteURL" />
      </httpErrors>
    </system.webServer>
  </location>
</configuration>
""")
        r = run(["import-iis", "--applicationhost", ah, "--path-map", "C:\\sites=/srv/sites",
                 "--path-map", "C:\\errors=/srv/errors", "-o", "-"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('[sites.error_pages]\n  "404" = "/srv/errors/en-US/404.htm"\n'
                      '  "403.16" = "/srv/sites/shop/pages/not-mapped.htm"\n', r.stdout)
        self.assertNotIn("secret", r.stdout)
        self.assertNotIn("oops", r.stdout)
        self.assertIn("custom error page for 403.7 (..\\..\\secret.txt): a path leaving the site's folder", r.stderr)
        self.assertIn("custom error page for 500 (ExecuteURL /oops.aspx): certgate serves error pages from files only",
                      r.stderr)
        self.assertNotIn("errorMode", r.stderr)  # DetailedLocalOnly is what certgate does
        with open(ah) as f:
            text = f.read()
        with open(ah, "w") as f:
            f.write(text.replace('errorMode="DetailedLocalOnly"', 'errorMode="Custom"'))
        r = run(["import-iis", "--applicationhost", ah, "--path-map", "C:\\sites=/srv/sites", "-o", "-"])
        self.assertIn('<httpErrors errorMode="Custom">: certgate shows custom pages', r.stderr)
        self.assertIn('detailed_errors = "never" for the same', r.stderr)
        # No map for C:\errors: the 404 page is left commented out, and reported.
        self.assertIn('  # "404" = "C:\\\\errors\\\\en-US\\\\404.htm"  (no --path-map for this path)', r.stdout)
        self.assertIn("custom error page for 404 (C:\\errors\\en-US\\404.htm) has no --path-map", r.stderr)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
