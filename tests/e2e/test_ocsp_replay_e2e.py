"""An OCSP answer without nextUpdate has nothing that bounds its age: a years-old "good" answer
replayed by someone on the path to the responder was accepted. Such an answer must be recent
(thisUpdate within an hour). A responder of our own (Python's http.server and the cryptography
package) signs answers with the delegated responder key of the PKI made by online_pki.sh."""
import datetime
import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Connection, Server, client_context, free_port, mtls_site  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402

OPKI = tempfile.mkdtemp(prefix="certgate-ocsp-replay-")
HTTP, OCSP, SITE = free_port(), free_port(), free_port()
AGE = {"seconds": 0}  # how old the responder's next answer's thisUpdate is


def load(name, key=False):
    with open(os.path.join(OPKI, name), "rb") as f:
        data = f.read()
    return serialization.load_pem_private_key(data, None) if key else x509.load_pem_x509_certificate(data)


class Responder(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        req = ocsp.load_der_ocsp_request(self.rfile.read(int(self.headers["Content-Length"])))
        issuer, responder, key = load("issuing.pem"), load("responder.pem"), load("responder.key", key=True)
        leaf = load("ocean.pem")
        assert req.serial_number == leaf.serial_number
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        body = (ocsp.OCSPResponseBuilder()
                .add_response(cert=leaf, issuer=issuer, algorithm=req.hash_algorithm,
                              cert_status=ocsp.OCSPCertStatus.GOOD,
                              this_update=now - datetime.timedelta(seconds=AGE["seconds"]),
                              next_update=None, revocation_time=None, revocation_reason=None)
                .responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
                .certificates([responder])
                .sign(key, hashes.SHA256())
                .public_bytes(serialization.Encoding.DER))
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


servers = []
server = None


def setUpModule():
    global server
    subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "online_pki.sh"), OPKI, str(HTTP),
                    str(OCSP), str(free_port()), str(free_port())], check=True, capture_output=True)
    for port, handler in ((HTTP, functools.partial(Quiet, directory=os.path.join(OPKI, "www"))),
                          (OCSP, Responder)):
        s = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=s.serve_forever, daemon=True).start()
        servers.append(s)
    trust = f'trusted_cas = ["{OPKI}/root.pem"]\n  url_timeout_ms = 2000\n  retry_seconds = 30'
    server = Server(mtls_site("Ocsp", SITE, 1, trust), threads=1, test_clock=True).start()


def tearDownModule():
    server.stop()
    for s in servers:
        s.shutdown()


class OcspWithoutNextUpdate(unittest.TestCase):
    def test_an_old_answer_is_refused_and_a_recent_one_accepted(self):
        ctx = client_context("ocean", cert_dir=OPKI)
        AGE["seconds"] = 3 * 24 * 3600  # a replay of an answer from three days ago
        r = Connection(SITE, context=ctx).request("/?ocsp-stale")
        self.assertEqual(r.code(), "403.13", r.text[:300])
        self.assertIn("no nextUpdate", server.stderr_text())
        e = server.log_entry("ocsp-stale")
        self.assertEqual((e["sc-status"], e["sc-substatus"], e["sc-win32-status"]), ("403", "13", "2148081683"))
        AGE["seconds"] = 60
        server.shift_clock(31)  # retry_seconds = 30 have passed for the server; the answer is 91 s old
        r = Connection(SITE, context=ctx).request("/?ocsp-recent")
        self.assertEqual(r.status, 200, r.text[:300])


if __name__ == "__main__":
    unittest.main()
