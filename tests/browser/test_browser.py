"""A real browser (issues 16 and 20): Debian's chromium, headless, with the test users'
certificates in its NSS database and the AutoSelectCertificateForUrls policy choosing one per
site, against a real certgate. Over HTTP/2: the sites offer h2 (the default `protocols`) and the
W3C lines' cs-version says HTTP/2 (see tests/browser/README.md).

Each user has a site (a port) of their own, so one policy file maps port -> certificate:
  mapped user        -> the page, and the W3C line names the user
  revoked            -> the 403.13 page with its reason and a request id found in the log
  valid, unmapped    -> the 403.16 "not mapped to an account" page
  expired            -> the browser hides the certificate: the 403.7 page and what to check
  leaf-only          -> offered because the site names its intermediate in the CA list (and not
                        offered when it does not: 403.7)
  cache              -> a certificate-protected page, then revocation: the next visit shows
                        403.13, not the page from the browser's cache
Screenshots of every error page go to $CERTGATE_ARTIFACTS (build/test-artifacts/browser).

Chromium reads policies only from /etc/chromium/policies/managed: the test installs its policy
there when it runs as root and removes it afterwards; otherwise it skips (exit 77), unless
CI=true, where a skip is a failure."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from harness import CERTGATE, Server, free_port, get, pki  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
POLICY_DIR = "/etc/chromium/policies/managed"
ARTIFACTS = os.environ.get("CERTGATE_ARTIFACTS", os.path.join("build", "test-artifacts", "browser"))


def skip_or_fail(why):
    if os.environ.get("CI") == "true":
        print("browser test cannot run in CI: " + why, file=sys.stderr)
        sys.exit(1)
    print("SKIP: " + why, file=sys.stderr)
    sys.exit(77)


def check_prerequisites():
    if not os.path.exists(CHROMIUM):
        skip_or_fail(f"{CHROMIUM} is missing (scripts/install-deps.sh installs chromium)")
    for tool in ("certutil", "pk12util", "node"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is missing (scripts/install-deps.sh installs libnss3-tools, nodejs)")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        skip_or_fail("tests/browser/node_modules is missing (scripts/install-deps.sh runs npm ci there)")
    if os.geteuid() != 0:
        skip_or_fail(f"chromium reads the AutoSelectCertificateForUrls policy only from {POLICY_DIR}, "
                     "which needs root to write")


P_MAPPED, P_REVOKED, P_UNMAPPED, P_EXPIRED, P_LEAF, P_LEAF_OFF, P_CACHE = (free_port() for _ in range(7))
P_DEMAND, P_STEP_UP = free_port(), free_port()  # on demand over HTTP/2, and its step-up binding
P_ADMIN = free_port()  # the admin listener's status page (issue 18)
USERS = {P_MAPPED: "alice", P_REVOKED: "carol", P_UNMAPPED: "bob", P_EXPIRED: "dave", P_LEAF: "ivan",
         P_LEAF_OFF: "ivan", P_CACHE: "otto", P_STEP_UP: "alice"}

LOG_FIELDS = '''  [sites.log]
  fields = ["date", "time", "cs-method", "cs-uri-stem", "cs-uri-query", "cs-username", "sc-status",
            "sc-substatus", "sc-win32-status", "cs(User-Agent)", "x-request-id", "x-reason", "cs-version"]
'''


def site(name, port, site_id, client_certificates, mapping=True):
    text = f"""
[[sites]]
name = "{name}"
id = {site_id}
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  protocols = ["h2", "http/1.1"]
  [sites.client_certificates]
  {client_certificates}
"""
    if mapping:
        text += """  [sites.mapping]
  [[sites.mapping.many_to_one]]
  name = "Staff and engineers"
  user = "@USER@"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "CN"
    match = "@CN@"
"""
    return text + LOG_FIELDS


def mapped_site(name, port, site_id, cc, cn):
    return site(name, port, site_id, cc).replace("@USER@", "CORP\\\\" + cn).replace("@CN@", cn)


ISSUING = 'trusted_cas = ["@PKI@/root-ca.pem"]\n  crl_files = ["@PKI@/crl"]'
SITES = (mapped_site("Mapped", P_MAPPED, 1, ISSUING, "alice")
         + mapped_site("Revoked", P_REVOKED, 2, ISSUING, "carol")
         + mapped_site("Unmapped", P_UNMAPPED, 3, ISSUING, "nobody")
         + mapped_site("Expired", P_EXPIRED, 4, ISSUING, "dave")
         + mapped_site("LeafOnly", P_LEAF, 5, 'trusted_cas = ["@PKI@/root-ca.pem"]\n  intermediates = '
                       '["@PKI@/nocrl-issuing-ca.pem"]\n  revocation = "off"', "ivan")
         + mapped_site("LeafOnlyNotNamed", P_LEAF_OFF, 6, 'trusted_cas = ["@PKI@/root-ca.pem"]\n  intermediates = '
                       '["@PKI@/nocrl-issuing-ca.pem"]\n  revocation = "off"\n  ca_list_intermediates = false', "ivan")
         + mapped_site("Cache", P_CACHE, 7, 'trusted_cas = ["@PKI@/root-ca.pem"]\n  crl_files = ["@DIR@/crl"]', "otto")
         + f"""
[[sites]]
name = "OnDemand"
id = 8
root = "www"
  [[sites.bindings]]
  listen = "127.0.0.1:{P_DEMAND}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  client_certificate = "on-demand"
  [[sites.bindings]]
  listen = "127.0.0.1:{P_STEP_UP}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  {ISSUING}
  [sites.mapping]
  [[sites.mapping.many_to_one]]
  name = "Staff"
  user = "CORP\\\\alice"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "CN"
    match = "alice"
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [sites.step_up]
  url = "https://127.0.0.1:{P_STEP_UP}/"
  key_file = "step-up.key"
""" + LOG_FIELDS)


class Browser:
    """drive.js under a HOME whose NSS database holds the users' certificates."""

    def __init__(self, home):
        env = dict(os.environ, HOME=home, CHROMIUM=CHROMIUM)
        self.proc = subprocess.Popen(["node", os.path.join(HERE, "drive.js")], cwd=HERE, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def goto(self, url, screenshot=None):
        cmd = {"goto": url}
        if screenshot:
            os.makedirs(ARTIFACTS, exist_ok=True)
            cmd["screenshot"] = os.path.abspath(os.path.join(ARTIFACTS, screenshot))
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the browser driver ended (see its stderr)")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"{url}: {answer['error']}")
        return answer

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def nss_database(home, users):
    """$HOME/.pki/nssdb trusting the test root, with each user's certificate and key; a user
    named "<name>:leaf" is imported without its issuing CA."""
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db)
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("certutil", "-N", "-d", "sql:" + db, "--empty-password")
    run("certutil", "-A", "-d", "sql:" + db, "-n", "Certgate Demo Root CA", "-t", "CT,C,C", "-i", pki("root-ca.pem"))
    for user in users:
        name, _, how = user.partition(":")
        p12 = os.path.join(home, name + ".p12")
        extra = [] if how == "leaf" else ["-certfile", pki("issuing-ca.pem")]
        run("openssl", "pkcs12", "-export", "-in", pki(name + ".pem"), "-inkey", pki(name + ".key"),
            "-name", name, "-passout", "pass:", "-out", p12, *extra)
        run("pk12util", "-i", p12, "-d", "sql:" + db, "-W", "")


def install_policy(path):
    patterns = [json.dumps({"pattern": f"https://127.0.0.1:{port}", "filter": {"SUBJECT": {"CN": cn}}})
                for port, cn in USERS.items()]
    os.makedirs(POLICY_DIR, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"AutoSelectCertificateForUrls": patterns}, f)


class BrowserPages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.homes = []
        cls.policy = os.path.join(POLICY_DIR, f"certgate-browser-test-{os.getpid()}.json")
        install_policy(cls.policy)
        # Removed however the class ends, setUpClass failing included: the policy is system-wide.
        cls.addClassCleanup(lambda: os.path.exists(cls.policy) and os.remove(cls.policy))
        cls.srv = Server(SITES, server_extra=f'pid_file = "certgate.pid"\nadmin_listen = "127.0.0.1:{P_ADMIN}"')
        cls.srv.edit_config("@DIR@", cls.srv.dir)
        # A private copy of the issuing CA: the cache test revokes otto without touching the
        # shared fixtures.
        base = os.path.dirname(pki("root-ca.pem"))
        shutil.copytree(os.path.join(base, "ca"), os.path.join(cls.srv.dir, "ca"))
        shutil.copy(os.path.join(base, "ca.cnf"), cls.srv.dir)
        shutil.copytree(os.path.join(base, "crl"), os.path.join(cls.srv.dir, "crl"))
        # A page last modified a year ago: without Cache-Control a browser may show it again
        # from its cache for weeks (heuristic freshness) without asking the server.
        private = os.path.join(cls.srv.dir, "www", "admin", "index.html")
        old = time.time() - 365 * 86400
        os.utime(private, (old, old))
        with open(os.path.join(cls.srv.dir, "step-up.key"), "wb") as f:
            f.write(os.urandom(32))
        cls.srv.start()
        cls.browser = cls.browser_with(["alice", "carol", "bob", "otto"])

    @classmethod
    def browser_with(cls, users):
        """A browser whose store holds `users`. Where the policy's certificate is not among those
        the browser may offer but others are, chromium asks the user; a browser holding only
        the certificate under test sends none instead, as the person's browser would."""
        home = tempfile.mkdtemp(prefix="certgate-browser-")
        cls.homes.append(home)
        nss_database(home, users)
        return Browser(home)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        assert cls.srv.stop() == 0
        for home in cls.homes:
            shutil.rmtree(home, ignore_errors=True)

    def url(self, port, path="/"):
        return f"https://127.0.0.1:{port}{path}"

    def log(self, site_id, query):
        return self.srv.log_entry(query, site_id=site_id, timeout=5)

    def request_id(self, text):
        m = re.search(r"Request id\s+(\S+)", text)
        self.assertIsNotNone(m, text)
        return m.group(1)

    def test_mapped_certificate_sees_the_page(self):
        r = self.browser.goto(self.url(P_MAPPED, "/?mapped"))
        self.assertEqual(r["status"], 200)
        self.assertIn("hello from /", r["text"])
        entry = self.log(1, "mapped")
        self.assertEqual(entry["cs-username"], "CORP\\alice")
        self.assertIn("Chrome", entry["cs(User-Agent)"])
        self.assertEqual(entry["cs-version"], "HTTP/2")

    def test_status_page_shows_the_sites_and_the_last_hours_answers(self):
        self.browser.goto(self.url(P_REVOKED, "/?for-status"))  # a 403.13 the page must count
        r = self.browser.goto(f"http://127.0.0.1:{P_ADMIN}/", screenshot="status-page.png")
        self.assertEqual(r["status"], 200)
        for text in ("status", "Expiring within 30 days", "Revocation cache", "Answers in the last hour",
                     "Most frequent refusals", "403.13"):
            self.assertIn(text, r["text"])
        self.assertTrue(os.path.getsize(os.path.join(ARTIFACTS, "status-page.png")) > 1000)

    def test_revoked_certificate_gets_the_403_13_page_with_its_reason(self):
        r = self.browser.goto(self.url(P_REVOKED, "/?revoked"), screenshot="403.13-revoked.png")
        self.assertEqual(r["status"], 403)
        self.assertIn("HTTP Error 403.13 - Forbidden", r["text"])
        self.assertIn("was revoked", r["text"])
        self.assertIn("CN=carol", r["text"])
        self.assertIn("Things you can try", r["text"])
        entry = self.log(2, "revoked")
        self.assertEqual(entry["x-request-id"], self.request_id(r["text"]))
        self.assertIn("was+revoked", entry["x-reason"])
        self.assertEqual(entry["cs-version"], "HTTP/2")  # the stream's own request id and page

    def test_on_demand_over_http2_steps_up(self):
        # The public page is served on the on-demand binding's HTTP/2 connection as it is.
        r = self.browser.goto(self.url(P_DEMAND, "/public/?od-public"))
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["url"], self.url(P_DEMAND, "/public/?od-public"))
        entry = self.log(8, "od-public")
        self.assertEqual((entry["cs-username"], entry["cs-version"]), ("-", "HTTP/2"))
        # /admin needs the certificate: HTTP/2 cannot ask on the connection, so the stream is sent
        # to the step-up binding and back with the cookie, and the page is served over HTTP/2.
        r = self.browser.goto(self.url(P_DEMAND, "/admin/?od-admin"))
        self.assertEqual(r["status"], 200, r["text"][:300])
        self.assertIn("hello from /admin", r["text"])
        self.assertEqual(r["url"], self.url(P_DEMAND, "/admin/?od-admin"))
        self.log(8, "od-admin")
        lines = [l for l in self.srv.log_lines(8) if " od-admin " in l]
        self.assertEqual(len(lines), 2, lines)
        self.assertIn(" 303 0 0 ", lines[0])
        self.assertIn(" CORP\\alice ", lines[1])
        self.assertIn(" 200 0 0 ", lines[1])
        self.assertTrue(lines[1].endswith(" HTTP/2"), lines[1])

    def test_unmapped_certificate_page_says_not_mapped(self):
        r = self.browser.goto(self.url(P_UNMAPPED, "/?unmapped"), screenshot="403.16-not-mapped.png")
        self.assertEqual(r["status"], 403)
        self.assertIn("HTTP Error 403.16 - Forbidden", r["text"])
        self.assertIn("Client certificate is not mapped to an account", r["text"])
        self.assertNotIn("untrusted", r["text"])
        self.assertIn("0x8007052e (ERROR_LOGON_FAILURE)", r["text"])
        self.assertEqual(self.log(3, "unmapped")["x-request-id"], self.request_id(r["text"]))

    def test_expired_certificate_is_hidden_by_the_browser_and_the_page_says_what_to_check(self):
        # dave's certificate expired yesterday: chromium leaves it out of the certificates it
        # offers, so it sends none, and the page must not leave dave believing he sent one.
        browser = self.browser_with(["dave"])
        try:
            r = browser.goto(self.url(P_EXPIRED, "/?expired"), screenshot="403.7-no-certificate.png")
        finally:
            browser.close()
        self.assertEqual(r["status"], 403)
        self.assertIn("HTTP Error 403.7 - Forbidden", r["text"])
        for what in ("has not expired", "authority that issued yours is installed",
                     "start it again", "CN=Certgate Demo Root CA"):
            self.assertIn(what, r["text"])
        self.assertEqual(self.log(4, "expired")["sc-substatus"], "7")

    def test_leaf_only_certificate_is_offered_when_the_intermediate_is_named(self):
        browser = self.browser_with(["ivan:leaf"])  # without its issuing CA
        try:
            r = browser.goto(self.url(P_LEAF, "/?leaf"))
            self.assertEqual(r["status"], 200, r["text"])
            self.assertEqual(self.log(5, "leaf")["cs-username"], "CORP\\ivan")
            # The same site without its intermediate in the CA list: the browser cannot link
            # ivan's certificate to a name it was given, and offers nothing.
            r = browser.goto(self.url(P_LEAF_OFF, "/?leaf-off"), screenshot="403.7-leaf-only-not-offered.png")
        finally:
            browser.close()
        self.assertIn("HTTP Error 403.7", r["text"])
        self.assertEqual(self.log(6, "leaf-off")["sc-substatus"], "7")

    def test_after_revocation_the_next_visit_shows_403_13_not_the_cached_page(self):
        first = self.browser.goto(self.url(P_CACHE, "/admin/?cache"))
        self.assertEqual(first["status"], 200)
        self.assertIn("hello from /admin", first["text"])
        env = dict(os.environ, CADIR=os.path.join(self.srv.dir, "ca", "issuing-ca"))
        cnf = os.path.join(self.srv.dir, "ca.cnf")
        subprocess.run(["openssl", "ca", "-config", cnf, "-revoke", pki("otto.pem")], env=env, check=True,
                       capture_output=True)
        subprocess.run(["openssl", "ca", "-config", cnf, "-gencrl", "-crlexts", "crl_ext", "-out",
                        os.path.join(self.srv.dir, "crl", "issuing-ca.crl")], env=env, check=True, capture_output=True)
        before = self.srv.stderr_text().count("reloaded")
        r = subprocess.run([CERTGATE, "reload", "-c", self.srv.config], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        deadline = time.time() + 5
        while self.srv.stderr_text().count("reloaded") == before and time.time() < deadline:
            time.sleep(0.05)
        again = self.browser.goto(self.url(P_CACHE, "/admin/?cache"), screenshot="403.13-after-revocation.png")
        self.assertIn("HTTP Error 403.13", again["text"])
        self.assertNotIn("hello from /admin", again["text"])


if __name__ == "__main__":
    check_prerequisites()
    unittest.main()
