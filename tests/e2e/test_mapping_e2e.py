"""Certificate mapping, Basic fallback, two-factor and authorization over real TLS, each checked
on the answer and on the W3C line (cs-username above all). spec: behaviour.md §1 steps 7-8, §3, §4."""
import base64
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import CERTGATE, PKI as PKI_DIR, Connection, Server, free_port, get, pki  # noqa: E402

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

    def test_user_denied_by_authorization_is_401_3(self):
        self.check("authz-ok", "bob", 200, 0, 0, "staff", path="/readers/")
        self.check("authz-denied", "alice", 401, 3, 5, "azureuser", path="/readers/")




class Reload(unittest.TestCase):
    def test_reload_applies_to_new_and_open_connections_and_refuses_bad_config(self):
        import signal
        import time
        port = free_port()
        srv = Server(SITE.replace(str(P), str(port)), server_extra='pid_file = "certgate.pid"')
        add_user(os.path.join(srv.dir, "users.txt"), "carl", "carl-pw")
        with open(os.path.join(srv.dir, "groups.txt"), "w") as f:
            f.write("readers: staff\n")
        srv.start()
        try:
            kept = Connection(port, user="alice")
            self.assertEqual(kept.request("/?before").status, 200)
            self.assertEqual(srv.log_entry("before")["cs-username"], "azureuser")

            srv.edit_config('user = "azureuser"', 'user = "renamed"')
            r = subprocess.run([CERTGATE, "reload", "-c", srv.config], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            deadline = time.time() + 5
            while "reloaded" not in srv.stderr_text() and time.time() < deadline:
                time.sleep(0.05)
            self.assertIn("reloaded: configuration generation 2", srv.stderr_text())

            # the open connection still works, and its next request is mapped by the new config
            self.assertEqual(kept.request("/?kept").status, 200)
            self.assertEqual(srv.log_entry("kept")["cs-username"], "renamed")
            self.assertEqual(get(port, "/?after", user="alice").status, 200)
            self.assertEqual(srv.log_entry("after")["cs-username"], "renamed")

            srv.edit_config('match = "otto"', 'match = "otto"\n    bogus_key = 1')
            r = subprocess.run([CERTGATE, "reload", "-c", srv.config], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
            self.assertIn("bogus_key: unknown key", r.stderr)
            srv.proc.send_signal(signal.SIGHUP)  # the server itself must refuse it too
            deadline = time.time() + 5
            while "reload refused" not in srv.stderr_text() and time.time() < deadline:
                time.sleep(0.05)
            self.assertIn("reload refused, the running configuration stays in force", srv.stderr_text())
            self.assertIn("bogus_key", srv.stderr_text())
            self.assertEqual(get(port, "/?still", user="alice").status, 200)
            self.assertEqual(srv.log_entry("still")["cs-username"], "renamed")
            self.assertEqual(kept.request("/?kept2").status, 200)
            self.assertEqual(srv.log_entry("kept2")["cs-username"], "renamed")
            kept.close()
        finally:
            self.assertEqual(srv.stop(), 0)
        self.assertFalse(os.path.exists(os.path.join(srv.dir, "certgate.pid")))


class PasswordFlood(unittest.TestCase):
    def test_queued_password_checks_are_bounded_with_503(self):
        import threading
        port = free_port()
        srv = Server(SITE.replace(str(P), str(port)), server_extra="max_pending_password_checks = 1")
        add_user(os.path.join(srv.dir, "users.txt"), "carl", "carl-pw")
        with open(os.path.join(srv.dir, "groups.txt"), "w") as f:
            f.write("")
        srv.start()
        statuses = []
        try:
            def attempt(i):
                r = get(port, f"/accept/?flood{i}", headers=basic("carl", f"wrong-{i}"))
                statuses.append((r.status, r.headers.get("retry-after")))
            threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertIn((503, "1"), statuses)
            self.assertIn((401, None), statuses)  # the checks that ran answered normally
            self.assertEqual(get(port, "/accept/?after-flood", headers=basic("carl", "carl-pw")).status, 200)
        finally:
            self.assertEqual(srv.stop(), 0)


class Tools(unittest.TestCase):
    def run_tool(self, *args):
        return subprocess.run([CERTGATE] + list(args), capture_output=True, text=True)

    def test_explain_shows_each_mapping_and_the_verdict(self):
        r = self.run_tool("explain", "-c", server.config, "--site", "Mapped", pki("uma-chain.pem"))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('2. "Everyone from the demo CA (disabled)" (allow as "nobody"): disabled', r.stdout)
        self.assertIn('rule 1: Subject OU = "Staff" (case-sensitive): no match (certificate has "Visitors")', r.stdout)
        self.assertIn("verdict: 403.16", r.stdout)
        r = self.run_tool("explain", "-c", server.config, "--site", "Mapped", pki("alice-chain.pem"))
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn('-> user "azureuser"', r.stdout)
        r = self.run_tool("explain", "-c", server.config, "--site", "Mapped", "--path", "/readers/", pki("alice-chain.pem"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("verdict: 401.3", r.stdout)
        r = self.run_tool("explain", "-c", server.config, "--site", "Mapped", pki("dave-chain.pem"))
        self.assertIn("validation: FAILED", r.stdout)
        self.assertIn("verdict: 403.17", r.stdout)

    def test_explain_compare_lists_the_certificates_that_change(self):
        with open(server.config) as f:
            old = f.read()
        new_path = os.path.join(server.dir, "new.toml")
        with open(new_path, "w") as f:
            f.write(old.replace('name = "Staff"\n  user = "staff"', 'name = "Staff"\n  user = "staff2"'))
        r = self.run_tool("explain", "-c", new_path, "--site", "Mapped", "--compare", server.config, PKI_DIR)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        changed = sorted(l.split(":")[0] for l in r.stdout.splitlines() if "->" in l)
        self.assertIn("bob-chain.pem", changed)
        self.assertIn("mona-chain.pem", changed)
        self.assertNotIn("alice-chain.pem", changed)
        self.assertIn("bob-chain.pem: 200.0 staff -> 200.0 staff2", r.stdout)
        r = self.run_tool("explain", "-c", server.config, "--site", "Mapped", "--compare", server.config, PKI_DIR)
        self.assertEqual(r.returncode, 0)
        self.assertIn("would change", r.stdout)

    def test_map_add_list_remove_keeps_the_file_and_refuses_duplicates(self):
        cfg = os.path.join(server.dir, "edit.toml")
        with open(server.config) as f:
            original = f.read().replace("# ", "# keep this comment ")
        with open(cfg, "w") as f:
            f.write(original)
        r = self.run_tool("map", "add", "-c", cfg, "--site", "Mapped", "--user", "bobby", pki("bob.pem"))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_tool("map", "add", "-c", cfg, "--site", "Mapped", "--user", "other", pki("bob.pem"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("maps the same certificate", r.stderr)
        r = self.run_tool("explain", "-c", cfg, "--site", "Mapped", pki("bob-chain.pem"))
        self.assertIn('-> user "bobby"', r.stdout)
        r = self.run_tool("map", "list", "-c", cfg, "--site", "Mapped")
        self.assertIn("bobby", r.stdout)
        r = self.run_tool("map", "remove", "-c", cfg, "--site", "Mapped", "--user", "bobby")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(cfg) as f:
            self.assertEqual(f.read(), original)
        r = self.run_tool("map", "remove", "-c", cfg, "--site", "Mapped", "--user", "nobody-here")
        self.assertEqual(r.returncode, 1)

    def test_users_remove_unknown_user_fails(self):
        r = self.run_tool("users", "remove", "-f", os.path.join(server.dir, "users.txt"), "ghost")
        self.assertEqual(r.returncode, 1)
        r = self.run_tool("users", "add", "-f", os.path.join(server.dir, "users.txt"), "bad:name", "--password-stdin")
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
