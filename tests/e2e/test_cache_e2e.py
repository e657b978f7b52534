"""The validation cache never accepts what has since become revoked, expired or unmapped:
revoke after a first success, a CRL whose nextUpdate passes, and a config change."""
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import CERTGATE, Connection, Server, client_context, free_port, get, pki  # noqa: E402

P = free_port()
ADMIN = free_port()

SITE = f"""
[[sites]]
name = "Cached"
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["crl"]
  [sites.mapping]
  [[sites.mapping.many_to_one]]
  name = "Everyone"
  user = "member"
    [[sites.mapping.many_to_one.rules]]
    field = "Issuer"
    subfield = "O"
    match = "Certgate Demo"
"""


def chain_checks():
    """certgate_chain_checks_total by source ("validated", "cache")."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {k: int(v) for k, v in re.findall(r'^certgate_chain_checks_total\{source="(\w+)"\} (\d+)$', text, re.M)}


class CachedValidation(unittest.TestCase):
    def setUp(self):
        self.srv = Server(SITE, server_extra=f'pid_file = "certgate.pid"\nadmin_listen = "127.0.0.1:{ADMIN}"',
                          test_clock=True)
        # a private copy of the issuing CA, so revoking here leaves the shared fixtures alone
        self.ca = os.path.join(self.srv.dir, "ca")
        shutil.copytree(os.path.join(os.path.dirname(pki("root-ca.pem")), "ca"), self.ca)
        shutil.copy(os.path.join(os.path.dirname(pki("root-ca.pem")), "ca.cnf"), self.srv.dir)
        shutil.copytree(os.path.join(os.path.dirname(pki("root-ca.pem")), "crl"), os.path.join(self.srv.dir, "crl"))

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0)

    def issuing_crl(self, *extra):
        env = dict(os.environ, CADIR=os.path.join(self.ca, "issuing-ca"))
        subprocess.run(["openssl", "ca", "-config", os.path.join(self.srv.dir, "ca.cnf"), "-gencrl",
                        "-crlexts", "crl_ext", "-out", os.path.join(self.srv.dir, "crl", "issuing-ca.crl")] + list(extra),
                       env=env, check=True, capture_output=True)

    def reload(self):
        before = self.srv.stderr_text().count("reloaded")
        r = subprocess.run([CERTGATE, "reload", "-c", self.srv.config], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        deadline = time.time() + 5
        while self.srv.stderr_text().count("reloaded") == before and time.time() < deadline:
            time.sleep(0.05)

    def test_revoked_after_a_first_success(self):
        self.srv.start()
        before = chain_checks()
        self.assertEqual(get(P, "/", user="bob").status, 200)
        self.assertEqual(chain_checks(), {"validated": before["validated"] + 1, "cache": before["cache"]})
        # A new connection with the same chain: the site's validation cache answers.
        self.assertEqual(get(P, "/", user="bob").status, 200)
        self.assertEqual(chain_checks(), {"validated": before["validated"] + 1, "cache": before["cache"] + 1})
        env = dict(os.environ, CADIR=os.path.join(self.ca, "issuing-ca"))
        subprocess.run(["openssl", "ca", "-config", os.path.join(self.srv.dir, "ca.cnf"), "-revoke", pki("bob.pem")],
                       env=env, check=True, capture_output=True)
        self.issuing_crl()
        self.reload()
        self.assertEqual(get(P, "/", user="bob").code(), "403.13")

    def test_session_resumed_after_a_reload_is_validated_again(self):
        # The session cache (default) outlives a reload, so the returning client resumes; but
        # nothing but its certificates is taken from the session: the new generation validates
        # them again.
        self.resume_across_reload()

    def test_ticket_resumed_after_a_reload_is_validated_again(self):
        # The same with stateless tickets: their keys outlive a reload too.
        self.srv.edit_config('pid_file = "certgate.pid"', 'pid_file = "certgate.pid"\nsession_resumption = "tickets"')
        self.resume_across_reload()

    def resume_across_reload(self):
        self.srv.start()
        for version in ("1.2", "1.3"):
            ctx = client_context("bob", version)
            c = Connection(P, context=ctx)
            self.assertEqual(c.request("/").status, 200)
            session = c.sock.session
            c.close()
            c = Connection(P, context=ctx, session=session)
            self.assertTrue(c.sock.session_reused)
            self.assertEqual(c.request("/").status, 200)
            session = c.sock.session
            c.close()
            if version == "1.2":
                self.reload()
                c = Connection(P, context=ctx, session=session)
                self.assertTrue(c.sock.session_reused, "a reload must not end resumption")
                self.assertEqual(c.request("/").status, 200)
                c.close()
        env = dict(os.environ, CADIR=os.path.join(self.ca, "issuing-ca"))
        subprocess.run(["openssl", "ca", "-config", os.path.join(self.srv.dir, "ca.cnf"), "-revoke", pki("bob.pem")],
                       env=env, check=True, capture_output=True)
        self.issuing_crl()
        self.reload()
        c = Connection(P, context=ctx, session=session)
        self.assertTrue(c.sock.session_reused)
        self.assertEqual(c.request("/").code(), "403.13")
        c.close()

    def test_session_resumes_until_its_timeout_on_the_servers_clock(self):
        # Sessions age on the clock the server decides by, from when it cached them (not from
        # OpenSSL's real-time stamp): made at +3000 s, still resumable at +6500 s, not at +6700 s
        # (session_timeout_seconds = 3600).
        self.srv.start()
        self.srv.shift_clock(3000)
        ctx = client_context("bob", "1.2")
        c = Connection(P, context=ctx)
        self.assertEqual(c.request("/").status, 200)
        session = c.sock.session
        c.close()
        for offset, resumed in ((6500, True), (6700, False)):
            self.srv.shift_clock(offset)
            c = Connection(P, context=ctx, session=session)
            self.assertEqual(c.sock.session_reused, resumed, offset)
            c.close()

    def test_crl_next_update_bounds_the_cached_result(self):
        soon = time.gmtime(time.time() + 600)
        self.issuing_crl("-crl_nextupdate", time.strftime("%Y%m%d%H%M%SZ", soon))
        self.srv.start()
        self.assertEqual(get(P, "/", user="bob").status, 200)
        self.srv.shift_clock(1200)  # past the CRL's nextUpdate (the validation cache holds an hour at most)
        r = get(P, "/", user="bob")  # a new connection: the cached success has expired
        self.assertEqual(r.code(), "403.13", r.text)
        self.assertIn("nextUpdate", r.text)

    def test_config_change_unmaps(self):
        self.srv.start()
        self.assertEqual(get(P, "/", user="bob").status, 200)
        self.srv.edit_config('match = "Certgate Demo"', 'match = "Someone Else"')
        self.reload()
        r = get(P, "/", user="bob")
        self.assertEqual(r.code(), "403.16")
        self.assertIn("no one-to-one or many-to-one mapping", r.text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
