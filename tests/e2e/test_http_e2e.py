"""HTTP behaviour over real sockets: static files, limits (431, 414, 413, 408), traversal,
keep-alive, detailed errors, config errors, and a clean SIGTERM that loses no log line."""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, free_port, get, pki, read_response, run  # noqa: E402

P = free_port()
R = free_port()  # a site with detailed_errors = "never" (separate server)

SITE = f"""
[[sites]]
name = "Files"
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{P}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
  [[sites.locations]]
  path = "/admin"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [sites.client_certificates]
  trusted_cas = ["@PKI@/root-ca.pem"]
  crl_files = ["@PKI@/crl"]
  [sites.log]
  fields = ["date", "time", "cs-method", "cs-uri-stem", "cs-uri-query", "cs-username", "sc-status",
            "sc-substatus", "sc-win32-status", "sc-bytes", "cs-host", "x(CERT_SUBJECT)", "x(CRYPT_PROTOCOL)"]
"""

LIMITS = """
max_header_bytes = 4096
max_headers = 20
max_url_bytes = 200
max_body_bytes = 1000
header_timeout_ms = 700
keepalive_timeout_ms = 1500
"""

server = None


def setUpModule():
    global server
    server = Server(SITE, server_extra=LIMITS, test_clock=True).start()


def tearDownModule():
    assert server.stop() == 0


class StaticFiles(unittest.TestCase):
    def test_default_document_and_content_type(self):
        r = get(P, "/?static")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8")
        self.assertIn("hello from /", r.text)

    def test_head_etag_304_and_range(self):
        c = Connection(P)
        head = c.request("/data.txt", method="HEAD")
        self.assertEqual((head.status, head.headers["content-length"], head.body), (200, "10", b""))
        etag = head.headers["etag"]
        self.assertEqual(c.request("/data.txt", headers={"If-None-Match": etag}).status, 304)
        part = c.request("/data.txt", headers={"Range": "bytes=3-5"})
        self.assertEqual((part.status, part.body, part.headers["content-range"]), (206, b"345", "bytes 3-5/10"))
        self.assertEqual(c.request("/data.txt", headers={"Range": "bytes=99-"}).status, 416)
        c.close()

    def test_changed_file_is_served_fresh_after_a_second(self):
        path = os.path.join(server.dir, "www", "changing.txt")
        with open(path, "w") as f:
            f.write("first")
        c = Connection(P)
        self.assertEqual(c.request("/changing.txt").body, b"first")
        self.assertEqual(c.request("/changing.txt").body, b"first")  # from the loop's cache
        with open(path, "w") as f:
            f.write("second version")
        # The loop's cache holds an answer for a second of the server's (steady) clock: moved
        # past it, not waited for. Forward only: other tests share this server.
        server.shift_clock(2)
        self.assertEqual(c.request("/changing.txt").body, b"second version")
        os.remove(path)
        server.shift_clock(4)
        self.assertEqual(c.request("/changing.txt").status, 404)
        c.close()

    def test_missing_file_is_404_and_folder_redirect(self):
        self.assertEqual(get(P, "/nope.html").status, 404)
        r = get(P, "/public")
        self.assertEqual((r.status, r.headers["location"]), (301, "/public/"))

    def test_post_is_405(self):
        r = get(P, "/", method="POST", body=b"x=1")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers["allow"], "GET, HEAD")

    def test_path_traversal_is_impossible(self):
        for target in ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc/passwd",
                       "/public/../../etc/passwd", "/..\\..\\etc\\passwd"]:
            r = get(P, target)
            self.assertIn(r.status, (400, 404), target)
            self.assertNotIn(b"root:", r.body, target)

    def test_encoded_path_cannot_dodge_a_location(self):
        for target in ["/%61dmin/", "/ADMIN/", "/public/../admin/", "//admin/"]:
            r = get(P, target + "?dodge")
            self.assertEqual(r.code(), "403.7", target)

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        c = Connection(P)
        for i in range(5):
            self.assertEqual(c.request(f"/?ka{i}").status, 200)
        c.close()

    def test_log_fields_custom_and_server_variables(self):
        get(P, "/admin/?custom", user="alice", host="localhost:%d" % P)
        e = server.log_entry("custom")
        self.assertEqual(e["sc-status"], "200")
        self.assertEqual(e["cs-host"], "localhost:%d" % P)
        self.assertEqual(e["x(CERT_SUBJECT)"], "emailAddress=alice@demo.test,+CN=alice,+OU=Engineering,+O=Certgate+Demo,+C=US")
        self.assertEqual(e["x(CRYPT_PROTOCOL)"], "TLSv1.3")
        self.assertGreater(int(e["sc-bytes"]), 0)
        with open(os.path.join(server.dir, "logs", "W3SVC1", sorted(os.listdir(os.path.join(server.dir, "logs", "W3SVC1")))[0]), "rb") as f:
            head = f.read(200)
        self.assertTrue(head.startswith(b"#Software: certgate "))
        self.assertIn(b"\r\n#Version: 1.0\r\n#Date: ", head)


    def test_head_error_answers_carry_no_body_bytes(self):
        # A HEAD refused with an error page (404, 403.7) announces the page's length but sends no
        # body: the next answer on the connection must start right after the head.
        c = Connection(P)
        for path in ("/missing.txt", "/admin/x"):
            head = c.request(path, method="HEAD")
            self.assertIn(head.status, (403, 404))
            self.assertEqual(head.body, b"")
            self.assertGreater(int(head.headers["content-length"]), 0)
        after = c.request("/data.txt")
        self.assertEqual((after.status, after.body), (200, b"0123456789"))
        c.close()


class Limits(unittest.TestCase):
    def test_oversized_header_is_431(self):
        r = get(P, "/?big", headers={"X-Big": "a" * 5000})
        self.assertEqual(r.status, 431)

    def test_too_many_headers_is_431(self):
        r = get(P, "/?many", headers={f"X-H{i}": "v" for i in range(30)})
        self.assertEqual(r.status, 431)
        self.assertEqual(server.log_entry("many")["sc-status"], "431")

    def test_long_url_is_414(self):
        self.assertEqual(get(P, "/" + "a" * 300).status, 414)

    def test_large_body_is_413_without_reading_it(self):
        c = Connection(P)
        r = c.request(raw=b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n")
        self.assertEqual(r.status, 413)
        self.assertEqual(r.headers.get("connection"), "close")
        c.close()

    def test_chunked_body_over_limit_is_413(self):
        c = Connection(P)
        chunk = b"%x\r\n%s\r\n" % (2000, b"x" * 2000)
        # a GET's body is read (and dropped) before the file is served, so the limit applies
        r = c.request(raw=b"GET / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n")
        self.assertEqual(r.status, 413)
        c.close()

    def test_refused_request_is_answered_without_reading_its_body(self):
        c = Connection(P)
        r = c.request(raw=b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 500\r\n\r\n")
        self.assertEqual((r.status, r.headers.get("connection")), (405, "close"))
        c.close()

    def test_slow_header_is_408(self):
        c = Connection(P)
        c.sock.sendall(b"GET /?slow HTTP/1.1\r\nHost: loc")
        t0 = time.time()
        r = read_response(c.file)
        self.assertEqual(r.status, 408)
        self.assertLess(time.time() - t0, 5)
        c.close()

    def test_idle_keepalive_connection_is_closed_silently(self):
        c = Connection(P)
        self.assertEqual(c.request("/").status, 200)
        time.sleep(2.0)
        self.assertEqual(c.sock.recv(10), b"")  # closed, no 408 for an idle connection
        c.close()

    def test_malformed_request_is_400(self):
        c = Connection(P)
        r = c.request(raw=b"GARBAGE\x01\x02 / HTTP/9.9\r\n\r\n")
        self.assertEqual(r.status, 400)
        c.close()

    def test_missing_host_is_400(self):
        c = Connection(P)
        self.assertEqual(c.request(raw=b"GET / HTTP/1.1\r\n\r\n").status, 400)
        c.close()

    def test_crlf_injection_in_target_is_rejected(self):
        self.assertEqual(get(P, "/%0d%0aSet-Cookie:x=1").status, 400)


class DetailedErrors(unittest.TestCase):
    def test_never_hides_the_reason(self):
        srv = Server(SITE.replace(str(P), str(R)))
        srv.edit_config('detailed_errors = "always"', 'detailed_errors = "never"')
        srv.start()
        try:
            r = get(R, "/admin/?hidden", user="mallory")
            self.assertEqual(r.code(), "403.16")
            self.assertIn("Client certificate is untrusted or invalid", r.text)
            self.assertNotIn("trusted list", r.text)
        finally:
            self.assertEqual(srv.stop(), 0)


class Lifecycle(unittest.TestCase):
    def test_sigterm_finishes_and_flushes_the_log(self):
        port = free_port()
        srv = Server(SITE.replace(str(P), str(port))).start()
        c = Connection(port)
        self.assertEqual(c.request("/?before-stop").status, 200)
        idle = Connection(port)  # an idle keep-alive connection must not delay the stop
        t0 = time.time()
        self.assertEqual(srv.stop(), 0)
        self.assertLess(time.time() - t0, 5)
        self.assertEqual(srv.log_entry("before-stop", timeout=0)["sc-status"], "200")
        c.close()
        idle.close()

    def test_config_error_exits_2_with_file_line_and_key(self):
        srv = Server(SITE.replace("ssl_flags = [\"Ssl\"]", "ssl_flags = [\"Sll\"]", 1))
        r = run(["serve", "-c", srv.config])
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"certgate\.toml:\d+:\d+: sites\[0\]\.ssl_flags: unknown flag \"Sll\"")
        r = run(["check-config", "-c", srv.config])
        self.assertEqual(r.returncode, 2)

    def test_missing_certificate_file_exits_2_naming_it(self):
        srv = Server(SITE.replace("server-chain.pem", "missing.pem"))
        r = run(["check-config", "-c", srv.config])
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing.pem", r.stderr)

    def test_malformed_crl_file_exits_2(self):
        srv = Server(SITE.replace('crl_files = ["@PKI@/crl"]', 'crl_files = ["@PKI@/garbage.pem"]'))
        r = run(["check-config", "-c", srv.config])
        self.assertEqual(r.returncode, 2)
        self.assertIn("crl_files", r.stderr)
        self.assertIn("no CRL found", r.stderr)

    def test_check_config_accepts_a_good_file(self):
        r = run(["check-config", "-c", server.config])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)

    def test_connections_beyond_max_connections_are_closed(self):
        port = free_port()
        srv = Server(SITE.replace(str(P), str(port)), server_extra="max_connections = 2").start()
        try:
            time.sleep(0.5)  # start() probed the port: let the server drop that connection first
            a, b = Connection(port), Connection(port)
            self.assertEqual(a.request("/").status, 200)
            with self.assertRaises((ConnectionError, OSError)):
                c = Connection(port)  # the handshake meets a closed socket
                c.request("/")
            a.close()
            b.close()
            time.sleep(0.3)
            self.assertEqual(get(port, "/").status, 200)  # room again
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_port_in_use_is_a_clear_error(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        srv = Server(SITE.replace(str(P), str(port)))
        r = run(["serve", "-c", srv.config, "-q"])
        blocker.close()
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot listen on 127.0.0.1:%d" % port, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
