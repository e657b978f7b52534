"""Certificate mapping, Basic fallback, two-factor and authorization over real TLS, each checked
on the answer and on the W3C line (cs-username above all). spec: behaviour.md §1 steps 7-8, §3, §4."""
import base64
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import CERTGATE, Connection, Server, free_port, get, pki  # noqa: E402

P = free_port()

SITE = f"""
[[sites]]
name = "Mapped"
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
groups_file = "groups.txt"
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]

  [sites.mapping]
  enabled = true

  [[sites.mapping.one_to_one]]
  user = "azureuser"
  certificate = "@PKI@/alice.pem"

  [[sites.mapping.one_to_one]]
  user = "alice-key"
  match = "public-key"
  certificate = "@PKI@/alice-rekeyless.pem"

  [[sites.mapping.one_to_one]]
  user = "zoe-upn"
  match = "upn"
  value = "ZOE@corp.demo.test"

  [[sites.mapping.many_to_one]]
  name = "Deny otto"
  permission = "deny"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "CN"
    match = "otto"

  [[sites.mapping.many_to_one]]
  name = "Everyone from the demo CA (disabled)"
  user = "nobody"
  enabled = false
    [[sites.mapping.many_to_one.rules]]
    field = "Issuer"
    subfield = "O"
    match = "Certgate Demo"

  [[sites.mapping.many_to_one]]
  name = "Staff"
  user = "staff"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "OU"
    match = "Staff"

  [[sites.mapping.many_to_one]]
  name = "Engineers"
  user = "engineer"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "OU"
    match = "engineering"
    case_sensitive = false
    [[sites.mapping.many_to_one.rules]]
    field = "Issuer"
    subfield = "O"
    match = "Certgate*"

  [sites.basic]
  enabled = true
  users_file = "users.txt"
  realm = "certgate test"

  [[sites.locations]]
  path = "/accept"
  ssl_flags = ["Ssl", "SslNegotiateCert"]
  anonymous = false

  [[sites.locations]]
  path = "/admin"
  require_password = true
  allow_users = ["azureuser"]

  [[sites.locations]]
  path = "/readers"
  allow_groups = ["Readers"]
"""

server = None


def add_user(path, user, password):
    r = subprocess.run([CERTGATE, "users", "add", "-f", path, user, "--password-stdin"],
                       input=password + "\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def setUpModule():
    global server
    server = Server(SITE)
    add_user(os.path.join(server.dir, "users.txt"), "carl", "carl-pw")
    add_user(os.path.join(server.dir, "users.txt"), "azureuser", "azure-pw")
    with open(os.path.join(server.dir, "groups.txt"), "w") as f:
        f.write("# group: members\nadmins: azureuser\nreaders: staff engineer\n")
    os.makedirs(os.path.join(server.dir, "www", "readers"))
    with open(os.path.join(server.dir, "www", "readers", "index.html"), "w") as f:
        f.write("readers\n")
    server.start()


def tearDownModule():
    assert server.stop() == 0


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Mapping(unittest.TestCase):
    def check(self, query, user, status, substatus, win32, username, path="/", headers=None):
        r = get(P, f"{path}?{query}", user=user, headers=headers)
        self.assertEqual(r.status, status, r.text)
        e = server.log_entry(query)
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"], e["cs-username"]),
                         (str(status), str(substatus), str(win32), username))
        return r

    def test_one_to_one_hit(self):
        self.check("o2o", "alice", 200, 0, 0, "azureuser")

    def test_renewed_certificate_does_not_match_one_to_one(self):
        # same subject, new key and serial: the exact-DER entry no longer applies; the
        # case-insensitive two-rule many-to-one mapping does
        self.check("renewed", "alice-renewed", 200, 0, 0, "engineer")

    def test_public_key_one_to_one_survives_renewal_with_the_same_key(self):
        self.check("spki", "alice-rekeyless", 200, 0, 0, "alice-key")

    def test_upn_one_to_one(self):
        self.check("upn", "zoe", 200, 0, 0, "zoe-upn")

    def test_many_to_one_on_subject_ou(self):
        self.check("m2o-ou", "bob", 200, 0, 0, "staff")

    def test_multi_valued_rdn_matches_any_value(self):
        self.check("multi-rdn", "mona", 200, 0, 0, "staff")

    def test_deny_mapping_before_allow_is_403_12(self):
        r = self.check("deny", "otto", 403, 12, 5, "-")
        self.assertIn("Deny otto", r.text)

    def test_disabled_mapping_is_skipped_and_no_match_is_403_16_1326(self):
        r = self.check("nomatch", "uma", 403, 16, 1326, "-")
        self.assertIn("no one-to-one or many-to-one mapping", r.text)

    def test_accept_mode_basic_fallback(self):
        self.check("basic-ok", None, 200, 0, 0, "carl", path="/accept/", headers=basic("carl", "carl-pw"))
        r = self.check("basic-wrong", None, 401, 1, 1326, "-", path="/accept/", headers=basic("carl", "nope"))
        self.assertEqual(r.headers["www-authenticate"], 'Basic realm="certgate test", charset="UTF-8"')
        r = self.check("basic-none", None, 401, 2, 5, "-", path="/accept/")
        self.assertIn("www-authenticate", r.headers)
        self.check("basic-unknown-user", None, 401, 1, 1326, "-", path="/accept/", headers=basic("mallory", "x"))

    def test_certificate_wins_over_basic_in_accept_mode(self):
        self.check("cert-in-accept", "bob", 200, 0, 0, "staff", path="/accept/", headers=basic("carl", "carl-pw"))

    def test_two_factor_location(self):
        self.check("2fa-ok", "alice", 200, 0, 0, "azureuser", path="/admin/", headers=basic("azureuser", "azure-pw"))
        self.check("2fa-nopw", "alice", 401, 2, 5, "-", path="/admin/")
        self.check("2fa-wrong", "alice", 401, 1, 1326, "-", path="/admin/", headers=basic("azureuser", "bad"))
        self.check("2fa-other-user", "alice", 401, 1, 1326, "-", path="/admin/", headers=basic("carl", "carl-pw"))
        self.check("2fa-nocert", None, 403, 7, 5, "-", path="/admin/", headers=basic("azureuser", "azure-pw"))

    def test_user_denied_by_authorization_is_403_0(self):
        self.check("authz-ok", "bob", 200, 0, 0, "staff", path="/readers/")
        self.check("authz-denied", "alice", 403, 0, 5, "azureuser", path="/readers/")


if __name__ == "__main__":
    unittest.main(verbosity=2)
