"""Directory mapping against a real slapd on loopback (behaviour.md §3 "directory mapping";
docs/directory.md): strong altSecurityIdentities forms, SIDs, weak forms only with allow_weak,
ambiguity, LDAP filter injection, groups feeding authorization, a bad bind, the directory going
away and coming back, one search for many concurrent requests, `explain` and `map ad-string`."""
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, free_port, get, mtls_site, pki, run  # noqa: E402
from slapd import READER_DN, READER_PASSWORD, SUFFIX, Slapd, entry  # noqa: E402

P_STRONG, P_WEAK, P_BADBIND, LDAP_PORT = free_port(), free_port(), free_port(), free_port()
PEOPLE = "ou=people," + SUFFIX
GROUPS = "ou=groups," + SUFFIX
SID_BASE = "S-1-5-21-1004336348-1177238915-682003330-"


# --- what Windows expects, computed with the openssl command, not with certgate -----------------

def openssl_x509(name, *args):
    return subprocess.run(["openssl", "x509", "-noout", "-in", pki(name + ".pem"), *args],
                          capture_output=True, text=True, check=True).stdout


def issuer_x500(name):
    rfc2253 = openssl_x509(name, "-issuer", "-nameopt", "RFC2253").strip().split("=", 1)[1]
    return ",".join(reversed(rfc2253.split(",")))  # the demo names have no escaped commas


def issuer_serial(name):
    serial = openssl_x509(name, "-serial").strip().split("=", 1)[1]
    serial = serial if len(serial) % 2 == 0 else "0" + serial
    reversed_bytes = "".join(serial[i:i + 2] for i in range(len(serial) - 2, -1, -2))
    return f"X509:<I>{issuer_x500(name)}<SR>{reversed_bytes}"


def ski(name):
    text = openssl_x509(name, "-ext", "subjectKeyIdentifier")
    return "X509:<SKI>" + text.splitlines()[1].strip().replace(":", "")


def sha1(name):
    return "X509:<SHA1-PUKEY>" + openssl_x509(name, "-fingerprint", "-sha1").split("=", 1)[1].strip().replace(":", "")


def sid_bytes(text):
    parts = [int(p) for p in text.split("-")[1:]]
    return (bytes([parts[0], len(parts) - 2]) + parts[1].to_bytes(6, "big") +
            b"".join(struct.pack("<I", p) for p in parts[2:]))


def person(uid, **attrs):
    return entry(f"uid={uid},{PEOPLE}", ["inetOrgPerson", "certgateAccount"], uid=uid, cn=uid, sn=uid,
                 sAMAccountName=uid, **attrs)


def seed():
    return (entry(SUFFIX, ["dcObject", "organization"], dc="corp", o="Corp") +
            entry(PEOPLE, ["organizationalUnit"], ou="people") +
            entry(GROUPS, ["organizationalUnit"], ou="groups") +
            entry(READER_DN, ["simpleSecurityObject", "organizationalRole"], cn="reader",
                  userPassword=READER_PASSWORD) +
            person("alice", altSecurityIdentities=issuer_serial("alice"),
                   memberOf=f"cn=WebAdmins,{GROUPS}") +
            # stored upper-case: AD compares altSecurityIdentities case-insensitively
            person("bob", altSecurityIdentities=ski("bob").upper()) +
            person("uma", altSecurityIdentities=sha1("uma")) +
            person("zoe", userPrincipalName="zoe@corp.demo.test") +
            person("otto1", altSecurityIdentities=issuer_serial("otto")) +
            person("otto2", altSecurityIdentities=[issuer_serial("otto"), "X509:<S>CN=otto"]) +
            person("sam", objectSid=sid_bytes(SID_BASE + "1105")) +
            person("tess", objectSid=sid_bytes(SID_BASE + "1106")) +
            person("walt", userPrincipalName="walt@corp.demo.test", objectSid=sid_bytes(SID_BASE + "1107")) +
            # accounts an unescaped "*)(uid=*" or "*)(mail=*" would pull into the search
            person("victim", userPrincipalName="victim@corp.demo.test",
                   altSecurityIdentities="X509:<RFC822>victim@demo.test") +
            entry(f"cn=Auditors,{GROUPS}", ["groupOfNames"], cn="Auditors", member=f"uid=bob,{PEOPLE}"))


def site(name, port, site_id, directory_extra="", password=READER_PASSWORD, one_to_one=False,
         urls=None):
    urls = urls or [f"ldap://127.0.0.1:{LDAP_PORT}"]
    local = ('\n  [[sites.mapping.one_to_one]]\n  user = "uma-local"\n'
             '  certificate = "@PKI@/uma.pem"') if one_to_one else ""
    return mtls_site(name, port, site_id, 'trusted_cas = ["@PKI@/root-ca.pem"]\n  crl_files = ["@PKI@/crl"]') + f"""
  [sites.mapping]{local}
  [sites.directory_mapping]
  url = {json.dumps(urls)}
  bind_dn = "{READER_DN}"
  bind_password = "{password}"
  base_dn = "{PEOPLE}"
  account_filter = "(objectClass=inetOrgPerson)"
  domain = "CORP"
  group_filter = "(member={{dn}})"
  group_base_dn = "{GROUPS}"
  timeout_ms = 2000
  connect_timeout_ms = 1000
  {directory_extra}
  [[sites.locations]]
  path = "/admin"
  allow_groups = ["WebAdmins"]
  [[sites.locations]]
  path = "/public"
  allow_groups = ["Auditors"]
"""


class DirectoryMapping(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ldap = Slapd(LDAP_PORT, seed()).start()
        # The Strong site lists a dead server first: libldap fails over to the live one.
        cls.server = Server(site("Strong", P_STRONG, 1, one_to_one=True,
                                 urls=[f"ldap://127.0.0.1:{free_port()}", f"ldap://127.0.0.1:{LDAP_PORT}"]) +
                            site("Weak", P_WEAK, 2, "allow_weak = true") +
                            site("BadBind", P_BADBIND, 3, password="wrong")).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.ldap.cleanup()

    def call(self, port, user, path="/", query=None):
        q = query or f"{user}-{port}-{path.strip('/')}-{time.monotonic_ns()}"
        r = get(port, f"{path}?{q}", user=user)
        site_id = {P_STRONG: 1, P_WEAK: 2, P_BADBIND: 3}[port]
        return r, self.server.log_entry(q, site_id=site_id)

    def assertLogged(self, log, status, substatus, win32, user="-"):
        self.assertEqual((log["sc-status"], log["sc-substatus"], log["sc-win32-status"], log["cs-username"]),
                         (str(status), str(substatus), str(win32), user))

    # strong forms -------------------------------------------------------------------------------
    def test_issuer_serial_maps_with_domain_and_memberof_group(self):
        r, log = self.call(P_STRONG, "alice")
        self.assertEqual(r.status, 200, r.text)
        self.assertLogged(log, 200, 0, 0, "CORP\\alice")
        r, log = self.call(P_STRONG, "alice", "/admin/")
        self.assertEqual(r.status, 200, r.text)  # memberOf WebAdmins
        r, log = self.call(P_STRONG, "alice", "/public/")
        self.assertEqual(r.status, 401, r.text)  # not in the Auditors group
        self.assertLogged(log, 401, 3, 5, "CORP\\alice")

    def test_ski_case_insensitive_and_group_search(self):
        r, log = self.call(P_STRONG, "bob")
        self.assertEqual(r.status, 200, r.text)
        self.assertLogged(log, 200, 0, 0, "CORP\\bob")
        r, _ = self.call(P_STRONG, "bob", "/admin/")
        self.assertEqual(r.status, 401)
        r, log = self.call(P_STRONG, "bob", "/public/")  # groupOfNames member, found by group_filter
        self.assertEqual(r.status, 200, r.text)

    def test_one_to_one_is_tried_before_the_directory(self):
        r, log = self.call(P_STRONG, "uma")
        self.assertEqual(r.status, 200, r.text)
        self.assertLogged(log, 200, 0, 0, "uma-local")

    def test_sha1_pukey_maps(self):
        r, log = self.call(P_WEAK, "uma")  # no one-to-one entry on this site
        self.assertEqual(r.status, 200, r.text)
        self.assertLogged(log, 200, 0, 0, "CORP\\uma")

    def test_sid_in_san_uri_and_in_extension(self):
        for user in ("sam", "tess"):
            r, log = self.call(P_STRONG, user)
            self.assertEqual(r.status, 200, r.text)
            self.assertLogged(log, 200, 0, 0, "CORP\\" + user)

    def test_unknown_certificate_is_403_16_logon_failure(self):
        r, log = self.call(P_STRONG, "mona")
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertIn("no account in the directory is bound to it", r.text)
        self.assertLogged(log, 403, 16, 1326)

    def test_two_accounts_claiming_one_certificate(self):
        r, log = self.call(P_STRONG, "otto")
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertIn("2 accounts claim", r.text)
        self.assertIn("uid=otto1", r.text)
        self.assertIn("uid=otto2", r.text)
        self.assertLogged(log, 403, 16, 1326)

    # weak forms ---------------------------------------------------------------------------------
    def test_weak_upn_refused_by_default_accepted_with_allow_weak(self):
        r, log = self.call(P_STRONG, "zoe")
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertLogged(log, 403, 16, 1326)
        r, log = self.call(P_WEAK, "zoe")
        self.assertEqual(r.status, 200, r.text)
        self.assertLogged(log, 200, 0, 0, "CORP\\zoe")

    def test_weak_match_on_an_account_with_another_sid_is_refused(self):
        r, log = self.call(P_WEAK, "walt")
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertIn("names SID " + SID_BASE + "6666", r.text)
        self.assertLogged(log, 403, 16, 1326)

    def test_filter_injection_does_not_widen_the_search(self):
        # UPN "*)(uid=*", e-mail "*)(mail=*", subject "CN=*)(objectClass=*": unescaped, any of
        # them would turn the weak search into "every account" (ambiguous, or a wrong user).
        r, log = self.call(P_WEAK, "inject")
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertIn("no account in the directory is bound to it", r.text)
        self.assertIn("\\2a\\29\\28uid=\\2a", r.text)  # the escaped UPN, as searched
        self.assertLogged(log, 403, 16, 1326)

    # failures -----------------------------------------------------------------------------------
    def test_bad_bind_is_500_and_logged(self):
        r, log = self.call(P_BADBIND, "alice")
        self.assertEqual(r.status, 500, r.text)
        self.assertIn("Invalid credentials", r.text)
        self.assertLogged(log, 500, 0, 8224)
        self.assertNotIn("wrong", self.server.stderr_text())  # the password is never logged
        self.assertIn("refused a lookup", self.server.stderr_text())

    def test_concurrent_requests_share_one_search(self):
        # mona has no account: a negative answer, cached too. The Weak site has not seen her.
        marker = issuer_serial("mona").split("<SR>")[1]
        before = self.ldap.searches(marker)
        results = []

        def one():
            results.append(get(P_WEAK, "/?concurrent", user="mona").code())
        threads = [threading.Thread(target=one) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, ["403.16"] * 20)
        # the strong search carries the serial (the weak one follows it): once for twenty requests
        time.sleep(0.5)
        self.assertEqual(self.ldap.searches(marker) - before, 1)

    def test_z_directory_outage_then_recovery(self):
        # alice is cached on the Strong site from earlier tests; sam on the Weak site is not.
        self.call(P_STRONG, "alice")
        self.ldap.stop()
        try:
            started = time.time()
            r, log = self.call(P_WEAK, "sam")
            self.assertLess(time.time() - started, 5, "a stopped directory must not hang requests")
            self.assertEqual(r.status, 500, r.text)
            self.assertIn("could not be reached", r.text)
            self.assertLogged(log, 500, 0, 8250)
            self.assertIn("unreachable", self.server.stderr_text())
            r, _ = self.call(P_STRONG, "alice")  # a cached account keeps working
            self.assertEqual(r.status, 200, r.text)
        finally:
            self.ldap.start()
        r, log = self.call(P_WEAK, "sam")
        self.assertEqual(r.status, 200, r.text)
        self.assertLogged(log, 200, 0, 0, "CORP\\sam")
        self.assertIn("answers again", self.server.stderr_text())

    # tools --------------------------------------------------------------------------------------
    def test_map_ad_string_matches_what_windows_expects(self):
        out = run(["map", "ad-string", pki("alice.pem")])
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = [l for l in out.stdout.splitlines() if not l.startswith("#")]
        self.assertIn(issuer_serial("alice"), lines)
        self.assertIn(ski("alice").lower(), [l.lower() for l in lines])
        self.assertIn(sha1("alice").lower(), [l.lower() for l in lines])
        strong = out.stdout.split("# weak")[0]
        self.assertIn("<SR>", strong)
        self.assertNotIn("<S>", strong)
        self.assertIn("X509:<S>C=US,O=Certgate Demo,OU=Engineering,CN=alice,E=alice@demo.test", out.stdout)

    def test_explain_shows_filter_and_entries(self):
        out = run(["explain", "-c", self.server.config, "--site", "Strong", "--path", "/admin",
                   pki("alice-chain.pem")])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("strong search: (&(objectClass=inetOrgPerson)(|", out.stdout)
        self.assertIn(f"found: uid=alice,{PEOPLE}", out.stdout)
        self.assertIn('"WebAdmins"', out.stdout)
        self.assertIn("verdict: 200.0", out.stdout)
        out = run(["explain", "-c", self.server.config, "--site", "Strong", pki("otto-chain.pem")])
        self.assertEqual(out.returncode, 1)
        self.assertEqual(len(re.findall(r"found: uid=otto", out.stdout)), 2, out.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
