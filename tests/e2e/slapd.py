"""A real OpenLDAP slapd (Debian's package) on a loopback port, for directory-mapping tests:
its own slapd.conf, schema and mdb database in a temporary folder, seeded with slapadd."""
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
SCHEMA = os.path.join(os.path.dirname(__file__), "ldap", "ad-mapping.schema")

SUFFIX = "dc=corp,dc=test"
READER_DN = "cn=reader," + SUFFIX
READER_PASSWORD = "reader-secret"


class Slapd:
    def __init__(self, port, ldif):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="certgate-slapd-")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.conf = os.path.join(self.dir, "slapd.conf")
        with open(self.conf, "w") as f:
            f.write(textwrap.dedent(f"""\
                include /etc/ldap/schema/core.schema
                include /etc/ldap/schema/cosine.schema
                include /etc/ldap/schema/inetorgperson.schema
                include {SCHEMA}
                pidfile {self.dir}/slapd.pid
                modulepath /usr/lib/ldap
                moduleload back_mdb
                loglevel stats
                database mdb
                suffix "{SUFFIX}"
                rootdn "cn=admin,{SUFFIX}"
                rootpw admin-secret
                directory {self.data}
                maxsize 16777216
                index objectClass eq
                index altSecurityIdentities,userPrincipalName,objectSid eq
                access to dn.subtree="ou=crl,{SUFFIX}" by * read
                access to attrs=userPassword by anonymous auth by * none
                access to * by users read by * none
                """))
        seed = os.path.join(self.dir, "seed.ldif")
        with open(seed, "w") as f:
            f.write(ldif)
        out = subprocess.run([SLAPADD, "-f", self.conf, "-l", seed], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("slapadd failed: " + out.stderr)
        self.proc = None
        self.log_path = os.path.join(self.dir, "slapd.log")

    def url(self):
        return f"ldap://127.0.0.1:{self.port}"

    def start(self):
        self.log = open(self.log_path, "a")
        # -d keeps slapd in the foreground, logging (stats: one line per search) to stderr.
        self.proc = subprocess.Popen([SLAPD, "-f", self.conf, "-h", self.url() + "/", "-d", "stats"],
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("slapd exited: " + open(self.log_path).read()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("slapd did not listen on %d" % self.port)
                time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None

    def searches(self, text):
        """How many SRCH operations slapd logged whose filter contains `text` (slapd logs the
        normalized filter: case-insensitive values in lower case)."""
        with open(self.log_path, errors="replace") as f:
            return sum(1 for line in f if " SRCH " in line and text.lower() in line.lower())

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def entry(dn, object_classes, **attrs):
    """One LDIF record; list values become several lines, bytes values base64 (name:: value)."""
    import base64
    lines = [f"dn: {dn}"] + [f"objectClass: {oc}" for oc in object_classes]
    for name, value in attrs.items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bytes):
                lines.append(f"{name}:: {base64.b64encode(v).decode()}")
            else:
                lines.append(f"{name}: {v}")
    return "\n".join(lines) + "\n\n"
