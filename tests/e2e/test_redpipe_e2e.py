"""The request pipeline attacked as a hostile client and a hostile admin-tool user (issue 14 hostile
pass; docs/security.md "The request pipeline: a hostile pass"): identities never cross requests on
one keep-alive connection (a pipelined request behind a pending password check, a Basic user other
than the mapped one, plain HTTP routed by a different Host per request, a reload while a password
check is pending); a password is never accepted with bytes after a NUL (crypt(3) stops there);
`explain` takes the password from a file or standard input, where other users cannot read it;
`verify -c` says when the location does not ask for a certificate.
Real certgate, real TLS clients, loopback only."""
import base64
import json
import os
import select
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (Connection, Server, free_port, mtls_site, pki, read_response,  # noqa: E402
                     run)

P, H = free_port(), free_port()

SITES = mtls_site("Mapping", P, 1, 'trusted_cas = ["@PKI@/root-ca.pem"]\n  crl_files = ["@PKI@/crl"]') + """
  [sites.mapping]
  [[sites.mapping.one_to_one]]
  user = "azureuser"
  certificate = "@PKI@/alice.pem"
  [sites.basic]
  enabled = true
  users_file = "users.txt"
  [[sites.locations]]
  path = "/admin"
  require_password = true
  [[sites.locations]]
  path = "/public"
  ssl_flags = ["Ssl"]

[[sites]]
name = "PlainA"
id = 2
root = "www"
ssl_flags = []
  [[sites.bindings]]
  listen = "127.0.0.1:%d"
  protocol = "http"
  host = "a.test"
  [sites.basic]
  enabled = true
  users_file = "users.txt"
  [[sites.locations]]
  path = "/admin"
  anonymous = false

[[sites]]
name = "PlainB"
id = 3
root = "www"
ssl_flags = []
  [[sites.bindings]]
  listen = "127.0.0.1:%d"
  protocol = "http"
  host = "b.test"
""" % (H, H)

PASSWORDS = {"azureuser": "azure-pw", "bob": "bob-pw"}


def basic(user, password):
    if isinstance(password, str):
        password = password.encode()
    return "Basic " + base64.b64encode(user.encode() + b":" + password).decode()


def setUpModule():
    global server
    server = Server(SITES)
    for user, password in PASSWORDS.items():
        r = run(["users", "add", "-f", os.path.join(server.dir, "users.txt"), user, "--password-stdin"],
                input=password + "\n")
        assert r.returncode == 0, r.stderr
    server.start()


def tearDownModule():
    server.stop()


def logged(query, site_id=1):
    e = server.log_entry(query, site_id=site_id)
    return e["sc-status"], e["sc-substatus"], e["sc-win32-status"], e["cs-username"]


class PasswordBytes(unittest.TestCase):
    def test_bytes_after_a_nul_never_pass_two_factor(self):
        c = Connection(P, user="alice")
        try:
            r = c.request("/admin/?nul-2fa", headers={"Authorization": basic("azureuser", b"azure-pw\x00junk")})
            self.assertEqual(r.code(), "401.1")
            # The right password on the same connection still passes: the refusal is the bytes'.
            r = c.request("/admin/?nul-2fa-right", headers={"Authorization": basic("azureuser", "azure-pw")})
            self.assertEqual(r.status, 200)
        finally:
            c.close()
        self.assertEqual(logged("nul-2fa"), ("401", "1", "1326", "-"))
        self.assertEqual(logged("nul-2fa-right"), ("200", "0", "0", "azureuser"))

    def test_bytes_after_a_nul_never_pass_basic(self):
        c = Connection(H, tls=False, sni="a.test")
        try:
            r = c.request("/admin/?nul-basic", headers={"Authorization": basic("bob", b"bob-pw\x00")})
            self.assertEqual(r.code(), "401.1")
        finally:
            c.close()
        self.assertEqual(logged("nul-basic", site_id=2), ("401", "1", "1326", "-"))

    def test_a_remembered_answer_is_never_another_users(self):
        c = Connection(H, tls=False, sni="a.test")
        try:
            self.assertEqual(c.request("/admin/?mem-bob", headers={"Authorization": basic("bob", "bob-pw")}).status, 200)
            # bob's password, remembered as right for bob, is wrong for azureuser.
            r = c.request("/admin/?mem-azure", headers={"Authorization": basic("azureuser", "bob-pw")})
            self.assertEqual(r.code(), "401.1")
        finally:
            c.close()
        self.assertEqual(logged("mem-bob", site_id=2)[3], "bob")
        self.assertEqual(logged("mem-azure", site_id=2), ("401", "1", "1326", "-"))


class OneConnectionManyRequests(unittest.TestCase):
    def test_pipelined_requests_behind_a_password_check_keep_their_own_identity(self):
        c = Connection(P, user="alice")
        try:
            # Three requests in one write: the first waits for the password pool while the others
            # are already in the server's read buffer.
            c.sock.sendall((
                f"GET /admin/?pipe-1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {basic('azureuser', 'azure-pw')}\r\n\r\n"
                "GET /admin/?pipe-2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                f"GET /admin/?pipe-3 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {basic('azureuser', 'nope')}\r\n\r\n"
            ).encode())
            answers = [read_response(c.file).status for _ in range(3)]
        finally:
            c.close()
        self.assertEqual(answers, [200, 401, 401])
        self.assertEqual(logged("pipe-1"), ("200", "0", "0", "azureuser"))
        self.assertEqual(logged("pipe-2"), ("401", "2", "5", "-"))
        self.assertEqual(logged("pipe-3"), ("401", "1", "1326", "-"))

    def test_two_factor_with_another_users_right_password_is_refused(self):
        c = Connection(P, user="alice")
        try:
            self.assertEqual(c.request("/admin/?other-challenge").code(), "401.2")
            r = c.request("/admin/?other-user", headers={"Authorization": basic("bob", "bob-pw")})
            self.assertEqual(r.code(), "401.1")
            self.assertIn("WWW-Authenticate".lower(), r.headers)
        finally:
            c.close()
        self.assertEqual(logged("other-user"), ("401", "1", "1326", "-"))

    def test_plain_http_routes_and_authenticates_each_request_by_its_own_host(self):
        c = Connection(H, tls=False, sni="a.test")
        try:
            self.assertEqual(c.request("/admin/?route-a", host="a.test",
                                       headers={"Authorization": basic("bob", "bob-pw")}).status, 200)
            # Site B has no Basic: the same credentials authenticate nobody there.
            self.assertEqual(c.request("/admin/?route-b", host="b.test",
                                       headers={"Authorization": basic("bob", "bob-pw")}).status, 200)
            self.assertEqual(c.request("/admin/?route-a2", host="a.test").code(), "401.2")
        finally:
            c.close()
        self.assertEqual(logged("route-a", site_id=2)[3], "bob")
        self.assertEqual(logged("route-b", site_id=3), ("200", "0", "0", "-"))
        self.assertEqual(logged("route-a2", site_id=2), ("401", "2", "5", "-"))


class ReloadWhilePending(unittest.TestCase):
    def test_the_next_request_after_a_pending_check_follows_the_reload(self):
        """A reload lands while the password pool is busy (bcrypt, cost 12, one worker): the
        connection's next request is decided under the new configuration, which maps alice's
        certificate to nobody."""
        c = Connection(P, user="alice")
        busy = []
        try:
            def slow(n):
                b = Connection(P, user="alice")
                try:
                    b.request(f"/admin/?busy-{n}", headers={"Authorization": basic("azureuser", f"wrong-{n}")})
                finally:
                    b.close()
            busy = [threading.Thread(target=slow, args=(n,)) for n in range(3)]
            for t in busy:
                t.start()
            c.sock.sendall(f"GET /admin/?pending HTTP/1.1\r\nHost: localhost\r\nAuthorization: "
                           f"{basic('azureuser', 'azure-pw')}\r\n\r\n".encode())
            server.edit_config('user = "azureuser"\n  certificate', 'user = "nobody"\n  certificate')
            before = server.stderr_text().count("configuration generation")
            server.proc.send_signal(signal.SIGHUP)
            first = read_response(c.file)
            deadline = time.time() + 10
            while server.stderr_text().count("configuration generation") == before:
                self.assertLess(time.time(), deadline, server.stderr_text())
                time.sleep(0.05)
            # Whichever generation decided the waiting request, it named the user that
            # generation mapped the certificate to, never a mix.
            self.assertIn((first.status, logged("pending")[3]), [(200, "azureuser"), (401, "-")])
            r = c.request("/admin/?after-reload", headers={"Authorization": basic("azureuser", "azure-pw")})
            self.assertEqual(r.code(), "401.1")
        finally:
            c.close()
            for t in busy:
                t.join()
            server.edit_config('user = "nobody"\n  certificate', 'user = "azureuser"\n  certificate')
            before = server.stderr_text().count("configuration generation")
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while server.stderr_text().count("configuration generation") == before and time.time() < deadline:
                time.sleep(0.05)
        self.assertEqual(logged("after-reload"), ("401", "1", "1326", "-"))


class UnknownUsers(unittest.TestCase):
    def test_an_unknown_user_costs_a_password_check_like_a_known_one(self):
        """A user name the users file does not hold was refused at once, a known one only after a
        crypt(3) check (a quarter second with bcrypt): the answer's delay listed the users. Seen
        without timing anything: with max_pending_password_checks = 1 and the one slot taken by
        a slow check (SHA-crypt, six million rounds), a second check is refused with 503; an
        unknown user must meet the same refusal, not a quick 401.1."""
        port = free_port()
        srv = Server("""
[[sites]]
name = "Users"
id = 1
root = "www"
ssl_flags = []
  [[sites.bindings]]
  listen = "127.0.0.1:%d"
  protocol = "http"
  [sites.basic]
  enabled = true
  users_file = "users.txt"
  [[sites.locations]]
  path = "/admin"
  anonymous = false
""" % port, server_extra="max_pending_password_checks = 1")
        with open(os.path.join(srv.dir, "users.txt"), "w") as f:
            f.write("slow:$6$rounds=6000000$redpipesalt$" + "A" * 86 + "\n")
            f.write("quick:$6$rounds=1000$redpipesalt$" + "A" * 86 + "\n")
        srv.start()

        def request(query, user, password):
            c = Connection(port, tls=False)
            try:
                return c.request(f"/admin/?{query}", headers={"Authorization": basic(user, password)})
            finally:
                c.close()

        def take_the_slot():
            """A connection whose slow check holds the one slot, once a known user's (quick)
            check is refused with 503; None if the slow request itself met a quick check in the
            slot (it was answered 503 then)."""
            slow = Connection(port, tls=False)
            slow.sock.sendall(f"GET /admin/?slow HTTP/1.1\r\nHost: localhost\r\nAuthorization: "
                              f"{basic('slow', 'x')}\r\n\r\n".encode())
            time.sleep(0.2)  # let it reach the pool first; checked below, not assumed
            deadline = time.time() + 10
            while time.time() < deadline:
                if select.select([slow.sock], [], [], 0)[0]:
                    break  # already answered: it never held the slot
                if request("known", "quick", "y").status == 503:
                    return slow
            slow.close()
            return None

        slow = None
        try:
            for _ in range(3):
                slow = take_the_slot()
                if slow:
                    break
            self.assertIsNotNone(slow, "the slow check never held the slot")
            unknown = request("unknown", "nosuchuser", "y")
            self.assertEqual((unknown.status, unknown.headers.get("retry-after")), (503, "1"))
            self.assertEqual(read_response(slow.file).code(), "401.1")
            # Once the slot is free, the unknown user is refused as a wrong password is.
            c = Connection(port, tls=False)
            try:
                self.assertEqual(c.request("/admin/?unknown-after", headers={"Authorization": basic("nosuchuser", "y")}).code(),
                                 "401.1")
            finally:
                c.close()
        finally:
            if slow:
                slow.close()
            self.assertEqual(srv.stop(), 0)
        e = srv.log_entry("unknown")
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"], e["cs-username"]),
                         ("503", "0", "0", "-"))
        e = srv.log_entry("unknown-after")
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"], e["cs-username"]),
                         ("401", "1", "1326", "-"))


class ErrorPagesOffHost(unittest.TestCase):
    def test_a_page_without_details_carries_no_win32_in_json_either(self):
        """detailed_errors = "never" is what an off-host client gets under "local": the title
        only. The JSON page carried the win32 code, which the HTML page hides (it tells a revoked
        certificate from an unreachable CRL server, both 403.13)."""
        port = free_port()
        srv = Server(mtls_site("Quiet", port, 1, 'trusted_cas = ["@PKI@/root-ca.pem"]\n  crl_files = ["@PKI@/crl"]') + """
  [sites.mapping]
  [[sites.mapping.one_to_one]]
  user = "azureuser"
  certificate = "@PKI@/alice.pem"
  [sites.basic]
  enabled = true
  users_file = "users.txt"
  [[sites.locations]]
  path = "/admin"
  require_password = true
""")
        srv.edit_config('detailed_errors = "always"', 'detailed_errors = "never"')
        r = run(["users", "add", "-f", os.path.join(srv.dir, "users.txt"), "azureuser", "--password-stdin"],
                input="azure-pw\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        srv.start()
        try:
            c = Connection(port, user="alice")
            try:
                r = c.request("/admin/?quiet-json", headers={"Accept": "application/json"})
                h = c.request("/admin/?quiet-html")
            finally:
                c.close()
        finally:
            self.assertEqual(srv.stop(), 0)
        body = json.loads(r.body)
        self.assertEqual((r.status, body["status"], body["substatus"]), (401, 401, 2))
        self.assertNotIn("win32", body)
        self.assertNotIn("reason", body)
        self.assertEqual(h.code(), "401.2")
        self.assertNotIn("Error code", h.text)


class AdminTools(unittest.TestCase):
    def explain(self, *extra, **kw):
        return run(["explain", "-c", server.config, "--site", "Mapping", "--path", "/admin/", *extra,
                    pki("alice-chain.pem")], cwd=server.dir, **kw)

    def test_explain_reads_the_password_from_a_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".pw", delete=False) as f:
            f.write("azure-pw\n")
        try:
            r = self.explain("--password-file", f.name)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("logged as: status 200 substatus 0 win32 0 user azureuser", r.stdout)
            with open(f.name, "w") as g:
                g.write("wrong\r\n")
            r = self.explain("--password-file", f.name)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("logged as: status 401 substatus 1 win32 1326 user -", r.stdout)
        finally:
            os.unlink(f.name)

    def test_explain_reads_the_password_from_standard_input(self):
        r = self.explain("--password-file", "-", input="azure-pw\n")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("the verdict checks the one given", r.stdout)
        r = self.explain("--password-file", "-", input="wrong\n")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

    def test_explain_refuses_an_unreadable_password_file_or_two_sources(self):
        r = self.explain("--password-file", os.path.join(server.dir, "no-such-file"))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("cannot read a password from --password-file", r.stderr)
        r = self.explain("--password", "azure-pw", "--password-file", "-", input="azure-pw\n")
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("logged as:", r.stdout)

    def test_verify_says_when_the_location_does_not_ask_for_a_certificate(self):
        r = run(["verify", "-c", server.config, "--site", "Mapping", "--path", "/public/", pki("alice-chain.pem")],
                cwd=server.dir)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("note: the location /public/ does not ask for a client certificate", r.stdout)
        r = run(["verify", "-c", server.config, "--site", "Mapping", "--path", "/", pki("alice-chain.pem")],
                cwd=server.dir)
        self.assertNotIn("note:", r.stdout)
        # The server indeed serves /public/ without looking at a certificate.
        c = Connection(P, user="alice")
        try:
            self.assertEqual(c.request("/public/?public-anon").status, 200)
        finally:
            c.close()
        self.assertEqual(logged("public-anon")[3], "-")


if __name__ == "__main__":
    unittest.main()
