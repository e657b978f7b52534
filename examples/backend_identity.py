#!/usr/bin/env python3
"""A tiny backend behind certgate that reads who the caller is.

    python3 examples/backend_identity.py 8080

certgate config (see docs/proxy.md):

    [[sites]]
    backend = "http://127.0.0.1:8080"
      [sites.forward]
      client_cert = "x-arr-clientcert"   # or rfc9440 / xfcc
      cert_fields = true

Only certgate may reach this port (bind it to 127.0.0.1 or a Unix socket): the identity
headers are trustworthy because certgate removes any the client sent. To trust nothing about
the network, verify X-Certgate-Assertion instead (docs/proxy.md has the code).
"""
import base64
import hashlib
import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        cert_b64 = self.headers.get("X-ARR-ClientCert", "")
        info = {
            "user": self.headers.get("X-Remote-User"),                 # mapped account, or absent
            "auth": self.headers.get("X-Remote-Auth-Type"),            # Certificate, Basic, ...
            "client_ip": self.headers.get("X-Forwarded-For"),
            "subject": self.headers.get("X-Client-Cert-Subject"),      # with cert_fields = true
            "cert_sha256": hashlib.sha256(base64.b64decode(cert_b64)).hexdigest() if cert_b64 else None,
        }
        body = json.dumps(info, indent=2).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
