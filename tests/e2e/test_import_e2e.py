"""`certgate import-iis` on fixtures written from the IIS configuration reference: golden TOML,
report, malformed XML, netsh output of two Windows versions, and the round trip: import, check,
serve, and the users of the XML mappings in the W3C log."""
import base64
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import CERTGATE, Server, free_port, get, pki  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "iis")


def fixture(name, **subst):
    with open(os.path.join(FIX, name)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace("@" + k + "@", v)
    path = os.path.join(tempfile.mkdtemp(prefix="certgate-iis-"), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def import_iis(*args):
    return subprocess.run([CERTGATE, "import-iis"] + list(args), capture_output=True, text=True)


def der_b64(pem_file):
    with open(pem_file) as f:
        body = "".join(l for l in f.read().splitlines() if not l.startswith("-----"))
    return base64.b64encode(base64.b64decode(body)).decode()


FIXED = dict(HTTP_PORT="8080", HTTPS_PORT="8443", ALICE_B64="MIIBALICEFIXTURE==")


class Golden(unittest.TestCase):
    def test_output_matches_the_golden_file(self):
        ah = fixture("applicationHost.config", **FIXED)
        netsh = fixture("netsh-2012r2.txt", **FIXED)
        r = import_iis("--applicationhost", ah, "--netsh", netsh,
                       "--web-config", "Default Web Site/secure/admin=" + os.path.join(FIX, "admin.web.config"),
                       "--path-map", "C:\\inetpub=/srv/inetpub", "-o", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(FIX, "expected.toml")) as f:
            self.assertEqual(r.stdout.replace(os.path.basename(ah), "applicationHost.config"), f.read())
        # the report names what was left out and what differs
        for text in ["net.tcp binding 808:*: only http and https are served",
                     "application '/app1' virtual directory",
                     "custom error page for 403.16",
                     "<rewrite>: not a certgate feature",
                     "<handlers>: not a certgate feature",
                     "clientCertificateMappingAuthentication (Active Directory mapping) is enabled",
                     "one-to-one mapping #1 (azureuser): password is encrypted and cannot be decrypted",
                     "uploadReadAheadSize=49152",
                     "IIS asked for the client certificate on demand"]:
            self.assertIn(text, r.stderr)

    def test_netsh_of_windows_server_2022(self):
        ah = fixture("applicationHost.config", **FIXED)
        netsh = fixture("netsh-2022.txt", **FIXED)
        r = import_iis("--applicationhost", ah, "--netsh", netsh, "--site", "Default Web Site", "-o", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('usage_check = false\n  revocation = "off"', r.stdout)
        self.assertIn("IIS asked for the client certificate on demand", r.stderr)
        # Issue 15: that binding asks on demand in certgate too, and the report says browsers need a step-up.
        self.assertIn('client_certificate = "on-demand"', r.stdout)
        self.assertIn("add [sites.step_up]", r.stderr)
        self.assertNotIn("Partner Portal", r.stdout)

    def test_malformed_xml_names_line_and_column(self):
        r = import_iis("--applicationhost", os.path.join(FIX, "malformed.config"), "-o", "-")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"malformed\.config:7:\d+: malformed XML")

    def test_not_iis_and_missing_site_are_errors(self):
        r = import_iis("--applicationhost", os.path.join(FIX, "admin.web.config"), "-o", "-")
        self.assertEqual(r.returncode, 2)
        ah = fixture("applicationHost.config", **FIXED)
        r = import_iis("--applicationhost", ah, "--site", "Nope", "-o", "-")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no site named 'Nope'", r.stderr)

    def test_placeholders_make_check_config_explain_what_is_missing(self):
        ah = fixture("applicationHost.config", **FIXED)
        out = os.path.join(os.path.dirname(ah), "certgate.toml")
        self.assertEqual(import_iis("--applicationhost", ah, "-o", out).returncode, 0)
        r = subprocess.run([CERTGATE, "check-config", "-c", out], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("EXPORT-", r.stderr)


class RoundTrip(unittest.TestCase):
    def test_import_check_serve_and_the_mapped_users_appear_in_the_log(self):
        https, http = free_port(), free_port()
        ah = fixture("applicationHost.config", HTTP_PORT=str(http), HTTPS_PORT=str(https),
                     ALICE_B64=der_b64(pki("alice.pem")))
        folder = os.path.dirname(ah)
        www = os.path.join(folder, "wwwroot")
        for sub in ("", "secure", "secure/admin", "public"):
            os.makedirs(os.path.join(www, sub), exist_ok=True)
            with open(os.path.join(www, sub, "index.html"), "w") as f:
                f.write("imported\n")
        os.makedirs(os.path.join(www, "errors"), exist_ok=True)
        with open(os.path.join(www, "errors", "403-16.htm"), "w") as f:
            f.write("<p>our own 403.16 page</p>\n")
        out = os.path.join(folder, "certgate.toml")
        r = import_iis("--applicationhost", ah,
                       "--web-config", "Default Web Site/secure/admin=" + os.path.join(FIX, "admin.web.config"),
                       "--path-map", "C:\\inetpub\\wwwroot=" + www,
                       "--certificate", "*=" + pki("server-chain.pem") + ":" + pki("server.key"),
                       "--trusted-cas", pki("root-ca.pem"), "--crl-files", pki("crl"), "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:  # <httpErrors> File entry → [sites.error_pages], below the mapped root
            self.assertIn('[sites.error_pages]\n  "403.16" = "%s/errors/403-16.htm"' % www, f.read())
        r = subprocess.run([CERTGATE, "check-config", "-c", out], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("error_pages", r.stdout + r.stderr)  # the file was found and read

        for user, expected in (("alice", "azureuser"), ("bob", "staff")):
            r = subprocess.run([CERTGATE, "explain", "-c", out, "--site", "Default Web Site", pki(user + "-chain.pem")],
                               capture_output=True, text=True)
            self.assertIn('user: "%s"' % expected, r.stdout)

        srv = Server("")
        srv.config = out
        srv.dir = folder
        srv.start()
        try:
            cases = [("rt-alice", "alice", "/", 200, "0", "azureuser"),
                     ("rt-bob", "bob", "/", 200, "0", "staff"),
                     ("rt-otto", "otto", "/", 403, "12", "-"),
                     ("rt-uma", "uma", "/", 403, "16", "-"),
                     ("rt-secure-bob", "bob", "/secure/", 200, "0", "staff"),
                     ("rt-admin-bob", "bob", "/secure/admin/", 401, "3", "staff"),
                     ("rt-admin-alice", "alice", "/secure/admin/", 200, "0", "azureuser"),
                     ("rt-public", None, "/public/", 200, "0", "-")]
            for query, user, path, status, sub, username in cases:
                resp = get(https, f"{path}?{query}", user=user)
                self.assertEqual(resp.status, status, query)
                e = srv.log_entry(query)
                self.assertEqual((e["sc-status"], e["sc-substatus"], e["cs-username"]), (str(status), sub, username), query)
            self.assertEqual(get(http, "/?rt-http", tls=False, host="localhost").code(), "403.4")
        finally:
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
