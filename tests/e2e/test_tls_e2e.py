"""Client-certificate cases over real TLS: each checked on the HTTP answer and on the W3C line
(sc-status sc-substatus sc-win32-status cs-username). spec: behaviour.md §1, §2, §5, §8."""
import hashlib
import json
import os
import re
import socket
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, get, pki, read_response, run  # noqa: E402
from raw_tls import send_garbage_certificate  # noqa: E402

P = free_port()      # https: sites A (default), B (SNI partner.test), C (SNI nousage.test)
ADMIN = free_port()  # /metrics
H = free_port()      # plain http for site A
X = free_port()      # https with a PKCS#12 server certificate (site D)

SITES = f"""
[[sites]]
name = "Site A"
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [[sites.bindings]]
  listen = "127.0.0.1:{H}"
  protocol = "http"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  revocation = "cache-only"
  [[sites.locations]]
  path = "/public"
  ssl_flags = ["Ssl"]
  [[sites.locations]]
  path = "/accept"
  ssl_flags = ["Ssl", "SslNegotiateCert"]
  [[sites.locations]]
  path = "/open"
  ssl_flags = []

[[sites]]
name = "Partner"
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  host = "partner.test"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/partner-root-ca.pem"]
  crl_files = ["@PKI@/crl/partner-root-ca.crl"]

[[sites]]
name = "No usage check"
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  host = "nousage.test"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  usage_check = false

[[sites]]
name = "Pfx site"
root = "www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:{X}"
  certificate = "@PKI@/server.pfx"
  pfx_password = "demo-pfx"
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  revocation = "off"
"""

server = None


def chain_checks():
    """certgate_chain_checks_total, both sources together."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(int(n) for n in re.findall(r'^certgate_chain_checks_total\{source="\w+"\} (\d+)$', text, re.M))


def setUpModule():
    global server
    server = Server(SITES, server_extra=f'admin_listen = "127.0.0.1:{ADMIN}"').start()


def tearDownModule():
    assert server.stop() == 0


class CertificateCases(unittest.TestCase):
    def expect(self, query, user=None, status=403, substatus=0, win32=0, port=None, sni="localhost",
               path="/", site_id=1, username="-"):
        r = get(port or P, f"{path}?{query}", user=user, sni=sni)
        self.assertEqual(r.status, status, r.text)
        if status >= 400:
            self.assertEqual(r.code(), f"{status}.{substatus}", r.text)
        e = server.log_entry(query, site_id)
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"], e["cs-username"]),
                         (str(status), str(substatus), str(win32), username))
        return r

    def test_no_certificate_on_require_location_is_403_7(self):
        r = self.expect("nocert", None, 403, 7, 5)
        self.assertIn("Client certificate required", r.text)

    def test_valid_certificate_is_200(self):
        r = self.expect("valid", "alice", 200, 0, 0)
        self.assertIn("hello from /", r.text)

    def test_expired_leaf_is_403_17(self):
        r = self.expect("expired", "dave", 403, 17, 2148204801)
        self.assertIn("expired", r.text)

    def test_not_yet_valid_leaf_is_403_17(self):
        r = self.expect("notyet", "erin", 403, 17, 2148204801)
        self.assertIn("is not valid before", r.text)

    def test_expired_intermediate_is_403_17(self):
        r = self.expect("expired-intermediate", "gina", 403, 17, 2148204801)
        self.assertIn("Old Issuing CA", r.text)

    def test_revoked_leaf_is_403_13(self):
        r = self.expect("revoked", "carol", 403, 13, 2148081680)
        self.assertIn("was revoked on", r.text)

    def test_revoked_intermediate_is_403_13(self):
        r = self.expect("revoked-intermediate", "hank", 403, 13, 2148081680)
        self.assertIn("Revoked Issuing CA", r.text)

    def test_missing_crl_in_cache_only_mode_is_403_13_unknown(self):
        r = self.expect("missing-crl", "ivan", 403, 13, 2148081683)
        self.assertIn("no CRL from", r.text)

    def test_expired_crl_in_cache_only_mode_is_403_13_unknown(self):
        self.expect("stale-crl", "judy", 403, 13, 2148081683)

    def test_untrusted_issuer_is_403_16(self):
        # mallory's issuer copies the trusted root's name (an impostor): the reason says so.
        r = self.expect("untrusted", "mallory", 403, 16, 2148204809)
        self.assertIn("a CA with this name is trusted, but its key did not sign", r.text)

    def test_ca_trusted_by_site_b_only(self):
        self.expect("partner-on-a", "paul", 403, 16, 2148204809)
        self.expect("partner-on-b", "paul", 200, 0, 0, sni="partner.test", site_id=2)
        self.expect("alice-on-b", "alice", 403, 16, 2148204809, sni="partner.test", site_id=2)

    def test_server_auth_only_eku_is_403_16_unless_usage_check_off(self):
        r = self.expect("serverauth", "frank", 403, 16, 2148204816)
        self.assertIn("clientAuth", r.text)
        self.expect("serverauth-nocheck", "frank", 200, 0, 0, sni="nousage.test", site_id=3)

    def test_corrupted_certificate_signature_is_403_16(self):
        r = self.expect("badsig", "corrupt-sig", 403, 16, 2148098052)
        self.assertIn("does not verify", r.text)

    def test_accept_mode_without_certificate_is_anonymous_200(self):
        self.expect("accept-anon", None, 200, 0, 0, path="/accept/")

    def test_accept_mode_with_bad_certificate_is_403_16(self):
        self.expect("accept-bad", "mallory", 403, 16, 2148204809, path="/accept/")

    def test_ssl_only_location_ignores_certificate(self):
        self.expect("public-bad", "mallory", 200, 0, 0, path="/public/")

    def test_plain_http_on_ssl_location_is_403_4(self):
        r = get(H, "/public/?plain", tls=False, host="localhost")
        self.assertEqual(r.code(), "403.4")
        e = server.log_entry("plain")
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"]), ("403", "4", "5"))

    def test_plain_http_on_location_without_ssl_is_served(self):
        r = get(H, "/open/?plain-open", tls=False, host="localhost")
        self.assertEqual(r.status, 404)  # no such folder, but not refused for lack of TLS

    def test_pkcs12_server_certificate(self):
        self.expect("pfx", "alice", 200, 0, 0, port=X, site_id=4)

    def test_tls12_and_tls13_both_work(self):
        for v in ("1.2", "1.3"):
            c = Connection(P, user="alice", tls_version=v)
            self.assertEqual(c.sock.version(), "TLSv" + v)
            self.assertEqual(c.request("/").status, 200)
            c.close()

    def test_startup_line_names_openssl_and_the_key_methods(self):
        # Client keys go to OpenSSL's built-in EC/RSA methods (src/pki/key_decoding.hpp), records
        # to its built-in AEAD ciphers (src/tls/record_ciphers.hpp); the startup line says so, next
        # to the OpenSSL version.
        self.assertRegex(server.stderr_text(),
                         r"ready \(OpenSSL 3[^,]*, built-in EC/RSA key methods, built-in record ciphers\)")

    def test_rsa_client_certificate_over_tls12_and_tls13(self):
        # An RSA key (PKCS#1 or PSS CertificateVerify) goes through OpenSSL's built-in RSA method
        # (pki/key_decoding.hpp), as EC keys do in every other case here.
        for v in ("1.2", "1.3"):
            c = Connection(P, user="rita", tls_version=v)
            self.assertEqual(c.sock.version(), "TLSv" + v)
            self.assertEqual(c.request(f"/?rsa{v}").status, 200)
            c.close()
            e = server.log_entry(f"rsa{v}")
            self.assertEqual((e["sc-status"], e["sc-substatus"]), ("200", "0"))

    def test_certificate_holds_for_every_request_on_the_connection(self):
        # behaviour.md §6: presented once, the certificate serves every later request on the
        # connection without being asked for again (one handshake, no renegotiation). Each
        # request is still decided against the current configuration: test_files_e2e.py shows a
        # reload withdrawing trust taking effect on such a connection.
        # Its chain is checked once, for the first request: were each request validated again
        # (in full or from the site's validation cache), /metrics would count three checks.
        before = chain_checks()
        c = Connection(P, user="alice")
        for i in range(3):
            self.assertEqual(c.request(f"/?holds{i}").status, 200)
            self.assertEqual(server.log_entry(f"holds{i}")["sc-status"], "200")
        c.close()
        self.assertEqual(chain_checks() - before, 1)

    def test_resumed_session_keeps_the_certificate_and_its_chain(self):
        # A returning client resumes its TLS session: the certificate (and the chain it sent,
        # which validation needs) must come back with it, for TLS 1.2 and 1.3.
        for version in ("1.2", "1.3"):
            ctx = client_context("alice", version)
            first = Connection(P, context=ctx)
            self.assertEqual(first.request("/?first-" + version).status, 200)
            session = first.sock.session
            first.close()
            # twice: the second resumption uses the ticket a resumed connection issued
            for n in range(2):
                again = Connection(P, context=ctx, session=session)
                self.assertTrue(again.sock.session_reused, version)
                r = again.request(f"/?resumed-{version}-{n}")
                session = again.sock.session
                again.close()
                self.assertEqual(r.status, 200, r.text)
                self.assertEqual(server.log_entry(f"resumed-{version}-{n}")["sc-status"], "200")

    def test_session_of_one_site_is_not_resumed_on_another(self):
        ctx = client_context("paul")
        first = Connection(P, context=ctx, sni="partner.test")
        self.assertEqual(first.request("/?partner-first", host="partner.test").status, 200)
        session = first.sock.session
        first.close()
        other = Connection(P, context=ctx, session=session, sni="localhost")
        self.assertFalse(other.sock.session_reused)
        self.assertEqual(other.request("/?partner-on-a-resume").code(), "403.16")
        other.close()

    def test_host_naming_another_site_is_421(self):
        # A connection made for the partner site (no cert) must not reach site A's policy, and
        # one made for site A must not be used for the partner site.
        r = get(P, "/?misdirected", user="alice", host="partner.test")
        self.assertEqual(r.status, 421)
        self.assertEqual(server.log_entry("misdirected")["sc-status"], "421")

    def test_sni_selects_site_and_unknown_sni_uses_default(self):
        r = get(P, "/?unknown-sni", user="alice", sni="site-a.test")
        self.assertEqual(r.status, 200)

    def test_garbage_instead_of_tls_handshake_is_dropped_and_server_survives(self):
        s = socket.create_connection(("127.0.0.1", P), timeout=5)
        s.sendall(b"\x16\x03\x01\xff\xff" + os.urandom(2000))
        try:
            data = s.recv(100)
        except (ConnectionResetError, socket.timeout):
            data = b""
        s.close()
        self.assertFalse(data.startswith(b"HTTP/"))
        self.assertEqual(get(P, "/", user="alice").status, 200)

    def test_garbage_bytes_as_certificate_chain_get_a_decode_alert(self):
        # OpenSSL cannot decode the chain, so no HTTP exchange can follow: the handshake ends
        # with a decode_error alert (50), and the server goes on serving.
        for garbage in (b"\x00" * 64, os.urandom(1500), b"\x30\x82\xff\xff" + b"A" * 100):
            self.assertEqual(send_garbage_certificate(P, "localhost", garbage), "alert:50")
        self.assertEqual(get(P, "/", user="alice").status, 200)

    def test_json_error_page_when_client_prefers_json(self):
        r = get(P, "/?json", user="mallory", headers={"Accept": "application/json"})
        body = json.loads(r.text)
        self.assertEqual((body["status"], body["substatus"], body["win32"]), (403, 16, 2148204809))
        self.assertIn("its key did not sign", body["reason"])



class TlsStreamCases(unittest.TestCase):
    """The TLS stream (src/tls/stream.hpp) under awkward clients: a reader too slow for the
    answer, a client that hangs up mid-answer, requests arriving back to back."""

    BIG = b"certgate" * (1024 * 1024)  # 8 MiB: more than loopback socket buffers hold

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(server.dir, "www", "big.bin"), "wb") as f:
            f.write(cls.BIG)

    def tls_socket(self, rcvbuf=None):
        raw = socket.socket()
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(20)
        raw.connect(("127.0.0.1", P))
        return client_context("alice").wrap_socket(raw, server_hostname="localhost")

    def test_large_file_reaches_a_slow_reader_whole(self):
        # The client reads nothing for a while: the server's writes find the socket full, wait
        # for it and resume where they stopped.
        s = self.tls_socket(rcvbuf=8192)
        s.sendall(b"GET /big.bin?slow-reader HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(1.5)
        r = read_response(s.makefile("rb"))
        s.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), len(self.BIG))
        self.assertEqual(hashlib.sha256(r.body).digest(), hashlib.sha256(self.BIG).digest())

    def test_client_hanging_up_mid_answer_leaves_the_server_serving(self):
        # Writing to a connection the peer has closed raises SIGPIPE unless the server ignores it.
        for _ in range(3):
            s = self.tls_socket()
            s.sendall(b"GET /big.bin?hang-up HTTP/1.1\r\nHost: localhost\r\n\r\n")
            s.recv(1000)
            s.close()
        time.sleep(0.5)
        self.assertIsNone(server.proc.poll(), server.stderr_text())
        self.assertEqual(get(P, "/", user="alice").status, 200)

    def test_requests_in_back_to_back_records_are_all_answered(self):
        # Two TLS records sent together: the second waits inside OpenSSL's buffer, not in the
        # socket, so waiting for the socket alone would hang. Then two requests in one record.
        c = Connection(P, user="alice")
        c.sock.sendall(b"GET /?rec1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        c.sock.sendall(b"GET /?rec2 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertEqual([read_response(c.file).status for _ in range(2)], [200, 200])
        c.sock.sendall(b"GET /?one1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                       b"GET /?one2 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertEqual([read_response(c.file).status for _ in range(2)], [200, 200])
        c.close()
        for q in ("rec1", "rec2", "one1", "one2"):
            self.assertEqual(server.log_entry(q)["sc-status"], "200")

class VerifyCli(unittest.TestCase):
    def verify(self, *args):
        return run(["verify", "--ca", pki("root-ca.pem"), "--crl", pki("crl")] + list(args))

    def test_valid(self):
        r = self.verify(pki("alice-chain.pem"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(r.stdout.startswith("200.0 OK\n"))
        self.assertIn("[2] subject:    CN=Certgate Demo Root CA", r.stdout)
        self.assertIn("not checked (trust anchor)", r.stdout)

    def test_expired(self):
        r = self.verify(pki("dave-chain.pem"))
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stdout.splitlines()[0], r"^403\.17 certificate 'CN=dave.*' expired \d{4}-")

    def test_revoked_json(self):
        r = self.verify("--json", pki("carol-chain.pem"))
        self.assertEqual(r.returncode, 1)
        j = json.loads(r.stdout)
        self.assertEqual((j["status"], j["substatus"], j["win32"], j["token"]), (403, 13, 2148081680, "403_13_revoked"))
        self.assertIn("revoked", j["chain"][0]["revocation"])

    def test_revocation_off(self):
        r = self.verify("--revocation", "off", pki("carol-chain.pem"))
        self.assertEqual(r.returncode, 0, r.stdout)

    def test_at_time_in_the_future_makes_erin_valid(self):
        import time
        later = str(int(time.time()) + 86400 * 548)
        self.assertEqual(self.verify(pki("erin-chain.pem")).returncode, 1)
        r = self.verify("--revocation", "off", "--at", later, pki("erin-chain.pem"))
        self.assertEqual(r.returncode, 0, r.stdout)

    def test_no_usage_check(self):
        self.assertEqual(self.verify(pki("frank-chain.pem")).returncode, 1)
        self.assertEqual(self.verify("--no-usage-check", pki("frank-chain.pem")).returncode, 0)

    def test_garbage_file_is_403_16_malformed(self):
        r = self.verify(pki("garbage.pem"))
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stdout.startswith("403.16 "), r.stdout)
        self.assertIn("no readable certificate", r.stdout)

    def test_usage_errors_exit_2(self):
        self.assertEqual(run(["verify", pki("alice.pem")]).returncode, 2)  # no --ca
        self.assertEqual(self.verify("/nonexistent.pem").returncode, 2)
        self.assertEqual(run(["verify", "--ca", pki("garbage.pem"), pki("alice.pem")]).returncode, 2)
        self.assertEqual(run(["verify", "--bogus"]).returncode, 2)

    def test_site_settings_from_config(self):
        r = run(["verify", "-c", server.config, "--site", "Partner", pki("paul-chain.pem")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run(["verify", "-c", server.config, "--site", "Partner", pki("alice-chain.pem")])
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stdout.startswith("403.16"))
        r = run(["verify", "-c", server.config, "--site", "Nope", pki("alice-chain.pem")])
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
