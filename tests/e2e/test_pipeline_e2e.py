"""One evidence pipeline (issue 14 item 1; docs/architecture.md): for every scenario below,
`certgate explain`, run on the server's own configuration file, prints the status, substatus,
win32 code and user the server answered and logged (W3C sc-status, sc-substatus,
sc-win32-status, cs-username) for the same certificate — online CRLs good, revoked and
unreachable (hard and soft fail), an issuer fetched from AIA, OCSP good and revoked, directory
mapping hit, miss and down, many-to-one allow and deny, two-factor right and wrong password.
Real servers on loopback: an HTTP server for CRLs and issuers, `openssl ocsp`, slapd."""
import base64
import http.server
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
import test_directory_e2e as directory  # noqa: E402
from harness import Connection, Server, client_context, free_port, mtls_site, pki, run  # noqa: E402
from slapd import Slapd  # noqa: E402

HTTP_PORT, OCSP_PORT, DEAD_PORT, LDAP_PORT = free_port(), free_port(), free_port(), free_port()
P_ONLINE, P_SOFT, P_DIR, P_DIR_DOWN, P_MAP = (free_port() for _ in range(5))
SITE_IDS = {"Online": 1, "Soft": 2, "Directory": 3, "DirectoryDown": 4, "Mapping": 5}
PORTS = {"Online": P_ONLINE, "Soft": P_SOFT, "Directory": P_DIR, "DirectoryDown": P_DIR_DOWN, "Mapping": P_MAP}
OPKI = tempfile.mkdtemp(prefix="certgate-pipeline-pki-")
HERE = os.path.dirname(os.path.abspath(__file__))

# The mapping site: many-to-one allow (OU=Staff) and deny (CN=otto), one-to-one alice, and a
# two-factor location.
MAPPING = mtls_site("Mapping", P_MAP, 5, 'trusted_cas = ["@PKI@/root-ca.pem"]\n  crl_files = ["@PKI@/crl"]') + """
  [sites.mapping]
  [[sites.mapping.one_to_one]]
  user = "azureuser"
  certificate = "@PKI@/alice.pem"
  [[sites.mapping.many_to_one]]
  name = "Deny otto"
  permission = "deny"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "CN"
    match = "otto"
  [[sites.mapping.many_to_one]]
  name = "Staff"
  user = "staff"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "OU"
    match = "Staff"
  [sites.basic]
  enabled = true
  users_file = "users.txt"
  [[sites.locations]]
  path = "/admin"
  require_password = true
"""


def online_site(name, port, site_id, extra=""):
    return mtls_site(name, port, site_id, f'''trusted_cas = ["{os.path.join(OPKI, 'root.pem')}"]
  url_timeout_ms = 1000
  {extra}''')


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# site, certificate (directory, name), path, password, and the answer both must give:
# (status, substatus, user). The win32 code is compared between the two, not written here.
SCENARIOS = [
    ("crl-good", "Online", (OPKI, "olga"), "/", None, (200, 0, "-")),
    ("crl-revoked", "Online", (OPKI, "oscar"), "/", None, (403, 13, "-")),
    ("crl-unreachable", "Online", (OPKI, "dora"), "/", None, (403, 13, "-")),
    ("crl-unreachable-soft-fail", "Soft", (OPKI, "dora"), "/", None, (200, 0, "-")),
    ("aia-issuer-fetched", "Online", (OPKI, "aida"), "/", None, (200, 0, "-")),
    ("ocsp-good", "Online", (OPKI, "ocean"), "/", None, (200, 0, "-")),
    ("ocsp-revoked", "Online", (OPKI, "orville"), "/", None, (403, 13, "-")),
    ("directory-hit", "Directory", (None, "alice"), "/", None, (200, 0, "CORP\\alice")),
    ("directory-hit-group-denied", "Directory", (None, "alice"), "/public/", None, (401, 3, "CORP\\alice")),
    ("directory-miss", "Directory", (None, "mona"), "/", None, (403, 16, "-")),
    ("directory-down", "DirectoryDown", (None, "alice"), "/", None, (500, 0, "-")),
    ("many-to-one-allow", "Mapping", (None, "bob"), "/", None, (200, 0, "staff")),
    ("many-to-one-deny", "Mapping", (None, "otto"), "/", None, (403, 12, "-")),
    ("two-factor", "Mapping", (None, "alice"), "/admin/", "azure-pw", (200, 0, "azureuser")),
    ("two-factor-wrong-password", "Mapping", (None, "alice"), "/admin/", "wrong", (401, 1, "-")),
]


class CrlServer:
    def __init__(self, port):
        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=os.path.join(OPKI, "www"), **kw)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def read(path):
    with open(path) as f:
        return f.read()


def setUpModule():
    global server, crl, ocsp, ldap
    subprocess.run(["bash", os.path.join(HERE, "online_pki.sh"), OPKI, str(HTTP_PORT), str(OCSP_PORT),
                    str(DEAD_PORT), str(LDAP_PORT)], check=True)
    crl = CrlServer(HTTP_PORT)
    ocsp_log = os.path.join(OPKI, "ocsp.log")
    ocsp_out = open(ocsp_log, "w")
    ocsp = subprocess.Popen(
        ["openssl", "ocsp", "-index", os.path.join(OPKI, "ca/issuing/index.txt"), "-port", str(OCSP_PORT),
         "-rsigner", os.path.join(OPKI, "responder.pem"), "-rkey", os.path.join(OPKI, "responder.key"),
         "-CA", os.path.join(OPKI, "issuing.pem"), "-nmin", "5"], stdout=ocsp_out, stderr=subprocess.STDOUT)
    ocsp_out.close()
    ldap = Slapd(directory.LDAP_PORT, directory.seed()).start()
    cache_dir = tempfile.mkdtemp(prefix="certgate-pipeline-cache-")
    server = Server(online_site("Online", P_ONLINE, 1) + online_site("Soft", P_SOFT, 2, "soft_fail = true") +
                    directory.site("Directory", P_DIR, 3) +
                    directory.site("DirectoryDown", P_DIR_DOWN, 4, urls=[f"ldap://127.0.0.1:{DEAD_PORT}"]) +
                    MAPPING, server_extra=f'cache_dir = "{cache_dir}"')
    r = subprocess.run([os.environ.get("CERTGATE", ""), "users", "add", "-f", os.path.join(server.dir, "users.txt"),
                        "azureuser", "--password-stdin"], input="azure-pw\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    server.start()
    deadline = time.time() + 10
    while "waiting for OCSP client connections" not in read(ocsp_log):
        if time.time() > deadline:
            raise RuntimeError("openssl ocsp did not start: " + read(ocsp_log))
        time.sleep(0.1)


def tearDownModule():
    server.stop()
    ocsp.terminate()
    ocsp.wait()
    crl.stop()
    ldap.cleanup()
    shutil.rmtree(OPKI, ignore_errors=True)


def cert_file(where, name):
    d, path = where, None
    for candidate in (f"{name}-chain.pem", f"{name}.pem"):
        path = os.path.join(d, candidate) if d else pki(candidate)
        if os.path.exists(path):
            return path
    return path


def explain(site, where, name, path, password):
    argv = ["explain", "-c", server.config, "--site", site, "--path", path, cert_file(where, name)]
    if password is not None:
        argv += ["--password", password]
    r = run(argv, cwd=server.dir)
    m = re.search(r"^logged as: status (\d+) substatus (\d+) win32 (\d+) user (\S+)$", r.stdout, re.M)
    assert m, r.stdout + r.stderr
    return m.groups(), r


def serve(site, where, name, path, password, query):
    ctx = client_context(name, cert_dir=where) if where else client_context(name)
    c = Connection(PORTS[site], context=ctx)
    try:
        headers = basic("azureuser", password) if password is not None else None
        resp = c.request(f"{path}?{query}", headers=headers)
    finally:
        c.close()
    e = server.log_entry(query, site_id=SITE_IDS[site])
    return resp, (e["sc-status"], e["sc-substatus"], e["sc-win32-status"], e["cs-username"])


class ExplainAgreesWithTheServer(unittest.TestCase):
    def test_each_scenario(self):
        for query, site, (where, name), path, password, expected in SCENARIOS:
            with self.subTest(query):
                # explain first: what it says comes from its own fetches and searches, not from
                # anything the server learnt for this certificate.
                said, out = explain(site, where, name, path, password)
                resp, logged = serve(site, where, name, path, password, query)
                self.assertEqual(str(resp.status), logged[0])
                self.assertEqual(said, logged, f"explain:\n{out.stdout}\nserver:\n{resp.text}")
                self.assertEqual((int(said[0]), int(said[1]), said[3]), expected, out.stdout)

    def test_verify_with_a_site_names_the_user(self):
        r = run(["verify", "-c", server.config, "--site", "Mapping", pki("bob-chain.pem")], cwd=server.dir)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("user: staff", r.stdout)
        r = run(["verify", "-c", server.config, "--site", "Mapping", pki("otto-chain.pem")], cwd=server.dir)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertTrue(r.stdout.startswith("403.12"), r.stdout)
        # Revocation fetched online, as the server does: good, then revoked.
        r = run(["verify", "-c", server.config, "--site", "Online", os.path.join(OPKI, "olga-chain.pem")],
                cwd=server.dir)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run(["verify", "-c", server.config, "--site", "Online", os.path.join(OPKI, "oscar-chain.pem")],
                cwd=server.dir)
        self.assertTrue(r.stdout.startswith("403.13"), r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
