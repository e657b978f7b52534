"""Hostile review of the revocation fetcher (after issue 13's items 6-9): what an
unauthenticated client, or a server at a URL its certificate names, can still make certgate do.

Real certgate, real sockets: certificates made here with the openssl CLI, listeners on loopback."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import test_fetch_e2e as F  # noqa: E402  (its PKI helpers, pointed at our own folder)
from harness import Server, free_port, mtls_site  # noqa: E402
from listeners import ConnectionServer  # noqa: E402

shutil.rmtree(F.DIR, ignore_errors=True)  # the (empty) folder test_fetch_e2e made on import
F.DIR = tempfile.mkdtemp(prefix="certgate-redfetch-pki-")
f = F.f
WEB, LDAP, HOLD, BUNDLE, COPIES = free_port(), free_port(), free_port(), free_port(), free_port()
P_BOMB, P_FAIR, P_BUNDLE, P_EVICT, P_EVICT_ADMIN, P_PACE, P_HOSTS, P_LFAIR, LDAP_CRL, BLACK = \
    (free_port() for _ in range(10))
N_LDAP_HOGS = 8
P_BUNDLE2, P_DNS, DNS_WEB = free_port(), free_port(), free_port()
# A nameserver of our own for one test: certgate runs in a mount namespace whose resolv.conf
# names it (port 53 on an address of 127/8 nobody else uses).
DNS_ADDR = f"127.{os.getpid() % 200 + 20}.53.{os.getpid() % 250 + 1}"
HOSTS = 5
N_COPIES = 20
W = f"http://127.0.0.1:{WEB}"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as s:
        fields = s.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as s:
        for line in s:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def ber_len(n):
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag, body_len):
    return bytes([tag]) + ber_len(body_len)


class HugeLdap(ConnectionServer):
    """Answers every LDAP search with one entry whose attribute value is `size` bytes: a
    directory (or anything at a URL a certificate names) that sends more than anyone asked.
    With `value`, that value instead (a directory serving a CRL)."""

    def __init__(self, port, size, value=None, vtype=b"cACertificate;binary"):
        self.size, self.searches, self.value, self.vtype = size, 0, value, vtype
        if value is not None:
            self.size = len(value)
        super().__init__(port=port)
        self.start()

    def serve(self, c):
        try:
            head = c.recv(65536)
            # SEQUENCE { INTEGER messageID, ... }: the request's id, answered in kind.
            i = 2 if head[1] < 0x80 else 2 + (head[1] & 0x7f)
            msgid = head[i + 2:i + 2 + head[i + 1]]
            if head[i + 2 + head[i + 1]] == 0x60:  # a BindRequest (libcurl binds, anonymously, first)
                mid = bytes([0x02, len(msgid)]) + msgid
                ok = bytes([0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00])
                c.sendall(tlv(0x30, len(mid) + len(ok)) + mid + ok)
                head = c.recv(65536)
                msgid = head[i + 2:i + 2 + head[i + 1]]
            self.searches += 1
            name = b"cn=x"
            vtype = self.vtype
            val_len = self.size
            vals = tlv(0x04, val_len)
            vset_len = len(vals) + val_len
            attr_body = len(tlv(0x04, len(vtype))) + len(vtype) + len(tlv(0x31, vset_len)) + vset_len
            attrs_len = len(tlv(0x30, attr_body)) + attr_body
            entry_len = len(tlv(0x04, len(name))) + len(name) + len(tlv(0x30, attrs_len)) + attrs_len
            op_len = len(tlv(0x64, entry_len)) + entry_len
            mid = bytes([0x02, len(msgid)]) + msgid
            msg_len = len(mid) + op_len
            c.sendall(tlv(0x30, msg_len) + mid + tlv(0x64, entry_len) + tlv(0x04, len(name)) + name +
                      tlv(0x30, attrs_len) + tlv(0x30, attr_body) + tlv(0x04, len(vtype)) + vtype +
                      tlv(0x31, vset_len) + vals)
            if self.value is not None:
                c.sendall(self.value)
                # SearchResultDone: success.
                done = bytes([0x65, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00])
                c.sendall(tlv(0x30, len(mid) + len(done)) + mid + done)
                c.recv(1024)
                return
            chunk = b"\0" * (1 << 20)
            sent = 0
            while sent < val_len:
                n = min(len(chunk), val_len - sent)
                c.sendall(chunk[:n])
                sent += n
            time.sleep(2)
        except OSError:
            pass
        finally:
            c.close()



def make_pki():
    os.makedirs(F.DIR, exist_ok=True)
    F.root("root", "Red Root CA")
    F.crl("root", f("root.crl"))
    F.issue("issuing", "Red Issuing CA", "root", F.CA_EXT)
    F.crl("issuing", f("issuing.crl"))
    F.issue("good", "good", "issuing", F.LEAF_EXT + f"crlDistributionPoints=URI:{W}/good.crl\n")
    F.chain("good", "good", "issuing")
    # An attacker's leaf, presented alone, whose issuer can only come from an ldap:// AIA URL.
    F.root("evil-root", "Evil Root")
    F.issue("ldapbomb", "ldapbomb", "evil-root",
            F.LEAF_EXT + f"authorityInfoAccess=caIssuers;URI:ldap://127.0.0.1:{LDAP}/cn=x?cACertificate;binary\n")
    # Attacker leaves each naming another (missing) issuer, so none is paced by another, whose
    # caIssuers URL is a listener that never answers.
    for i in range(6):
        F.root(f"ghost{i}", f"Ghost CA {i}")
        F.issue(f"hog{i}", f"hog{i}", f"ghost{i}",
                F.LEAF_EXT + f"authorityInfoAccess=caIssuers;URI:http://127.0.0.1:{HOLD}/ghost{i}.cer\n")
    # Leaves whose caIssuers URL answers with their (untrusted) issuer repeated many times, as
    # PEM and as a certs-only PKCS#7: every copy names the right issuer, none chains to an anchor.
    # A fake issuer with the real issuing CA's name and key identifier, and leaves it signs that
    # name each its own caIssuers URL, where an attacker serves a copy of the real (public)
    # issuing CA certificate: it names the right issuer and chains to the anchor, so it is kept.
    ski = subprocess.run(["openssl", "x509", "-in", f("issuing.pem"), "-noout", "-ext", "subjectKeyIdentifier"],
                         check=True, capture_output=True, text=True).stdout.split("\n")[1].strip()
    F.key("fake-issuing")
    F.openssl("req", "-x509", "-new", "-key", f("fake-issuing.key"), "-subj", "/O=Fetch Demo/CN=Red Issuing CA",
              "-days", "30", "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", f"subjectKeyIdentifier={ski}",
              "-out", f("fake-issuing.pem"))
    for i in range(N_COPIES):
        F.issue(f"copy{i}", f"copy{i}", "fake-issuing",
                F.LEAF_EXT + f"authorityInfoAccess=caIssuers;URI:http://127.0.0.1:{COPIES}/copy{i}.cer\n")
    # A legitimate leaf presented alone (its issuer from AIA), and an attacker's leaf naming the
    # same caIssuers URL, issuer name and key identifier, whose AKI also names an issuer and
    # serial that the real issuing CA does not have: the answer cannot vouch for it.
    F.issue("alone", "alone", "issuing", F.LEAF_EXT.replace("authorityKeyIdentifier=keyid:always\n", "") +
            f"authorityKeyIdentifier=keyid:always\ncrlDistributionPoints=URI:{W}/good.crl\n"
            f"authorityInfoAccess=caIssuers;URI:{W}/issuing.cer\n")
    F.issue("shadow", "shadow", "fake-issuing", F.LEAF_EXT.replace("authorityKeyIdentifier=keyid:always\n", "") +
            f"authorityKeyIdentifier=keyid:always,issuer:always\nauthorityInfoAccess=caIssuers;URI:{W}/issuing.cer\n")
    # An ldap:// caIssuers URL whose host part, percent-encoded, is a list of hosts: libldap
    # would try each in turn, each for the whole timeout.
    hosts = "%20".join([f"127.0.0.1%3a{HOLD}"] + [f"ldap%3a%2f%2f127.0.0.1%3a{HOLD}"] * (HOSTS - 2) +
                       ["ldap%3a%2f%2f127.0.0.1"])
    F.issue("hosts", "hosts", "evil-root",
            F.LEAF_EXT + f"authorityInfoAccess=caIssuers;URI:ldap://{hosts}:{HOLD}/cn=x\n")
    # A leaf whose distribution point is a directory; attacker leaves whose caIssuers URLs are
    # ldap:// to a host that never answers.
    F.issue("ldapgood", "ldapgood", "issuing",
            F.LEAF_EXT + f"crlDistributionPoints=URI:ldap://127.0.0.1:{LDAP_CRL}/cn=crl\n")
    F.chain("ldapgood", "ldapgood", "issuing")
    for i in range(N_LDAP_HOGS):
        F.issue(f"lhog{i}", f"lhog{i}", "evil-root",
                F.LEAF_EXT + f"authorityInfoAccess=caIssuers;URI:ldap://127.0.0.1:{BLACK}/cn=hog{i}\n")
    # Two issuing CAs published together at one caIssuers URL (a PKCS#7 or PEM bundle, as
    # bridge PKIs publish), a leaf of the second presented alone, and an attacker's leaf naming
    # the first (its name and key id copied) at that URL.
    F.issue("issuing2", "Red Issuing CA 2", "root", F.CA_EXT)
    F.crl("issuing2", f("issuing2.crl"))
    F.issue("alone2", "alone2", "issuing2", F.LEAF_EXT + f"crlDistributionPoints=URI:{W}/good2.crl\n"
            f"authorityInfoAccess=caIssuers;URI:{W}/both.pem\n")
    F.issue("squatter", "squatter", "fake-issuing", F.LEAF_EXT + f"authorityInfoAccess=caIssuers;URI:{W}/both.pem\n")
    # A leaf whose distribution point is a host name; attacker leaves whose caIssuers URLs are
    # names whose lookup never gets an answer.
    F.issue("named", "named", "issuing", F.LEAF_EXT + f"crlDistributionPoints=URI:http://crl.good.test:{DNS_WEB}/good.crl\n")
    F.chain("named", "named", "issuing")
    for i in range(4):
        F.issue(f"dnshog{i}", f"dnshog{i}", "evil-root",
                F.LEAF_EXT + f"authorityInfoAccess=caIssuers;URI:http://slow{i}.evil.test:{DNS_WEB}/x.cer\n")
    F.root("bundler", "Bundle CA")
    for kind in ("pem", "p7c"):
        F.issue(f"bundle-{kind}", f"bundle-{kind}", "bundler",
                F.LEAF_EXT + f"authorityInfoAccess=caIssuers;URI:http://127.0.0.1:{BUNDLE}/bundle.{kind}\n")
    one = F.read("bundler.pem")
    with open(f("bundle.pem"), "wb") as out:
        out.write(one * ((20 << 20) // len(one)))
    F.openssl("crl2pkcs7", "-nocrl", "-certfile", f("bundle.pem"), "-outform", "DER", "-out", f("bundle.p7c"))


def site(port, timeout_ms):
    return mtls_site("Red", port, 1, f'''trusted_cas = ["{f('root.pem')}"]
  crl_files = ["{f('root.crl.pem')}"]
  url_timeout_ms = {timeout_ms}''')


def setUpModule():
    make_pki()


def tearDownModule():
    shutil.rmtree(F.DIR, ignore_errors=True)


class LdapAnswerSize(unittest.TestCase):
    """max_fetch_bytes bounds an ldap:// answer while it arrives, not after libldap has
    buffered all of it: an untrusted chain's caIssuers URL may be ldap:// to anyone's server."""

    @classmethod
    def setUpClass(cls):
        cls.ldap = HugeLdap(LDAP, 256 << 20)
        cls.server = Server(site(P_BOMB, 10000), server_extra='cache_dir = ""\nmax_fetch_bytes = 1048576').start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.ldap.stop()

    def test_huge_ldap_answer_is_cut_at_max_fetch_bytes(self):
        pid = self.server.proc.pid
        before = vm_hwm_kib(pid)
        r = F.request(P_BOMB, "ldapbomb", "bomb")  # F.request reads certificates from F.DIR
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertGreaterEqual(self.ldap.searches, 1, "the AIA URL was asked")
        grown = vm_hwm_kib(pid) - before
        self.assertIsNone(self.server.proc.poll(), "certgate must still run")
        self.assertLess(grown, 64 << 10, f"peak memory grew by {grown} KiB for a 1 MiB max_fetch_bytes")


class FairShare(unittest.TestCase):
    """Unauthenticated chains can make the server ask caIssuers URLs (how a missing issuer is
    found); they must not take every fetch slot, nor fill the wait queue, so that a trusted
    client's CRL fetch waits behind them."""

    @classmethod
    def setUpClass(cls):
        cls.web = F.Listener(WEB, {"/good.crl": F.read("issuing.crl")})
        cls.hold = F.Hold(HOLD)
        cls.server = Server(site(P_FAIR, 3000),
                            server_extra='cache_dir = ""\nrevocation_concurrent_fetches = 2').start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.web.stop()
        cls.hold.stop()

    def test_trusted_fetch_is_not_starved_by_aia_flood(self):
        results = []

        def hog(i):
            try:
                results.append(F.request(P_FAIR, f"hog{i}", f"hog{i}").code())
            except Exception as e:  # noqa: BLE001
                results.append(repr(e))

        hogs = [threading.Thread(target=hog, args=(i,), daemon=True) for i in range(6)]
        for t in hogs:
            t.start()
        deadline = time.monotonic() + 5
        while self.hold.accepted < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the rest of the flood queued behind the held fetches
        started = time.monotonic()
        r = F.request(P_FAIR, "good", "good")
        took = time.monotonic() - started
        self.assertEqual(r.status, 200, r.text)
        self.assertLess(took, 3.0, f"the trusted client's CRL fetch waited {took:.1f} s behind the flood")
        self.assertEqual(self.web.count("/good.crl"), 1)
        self.assertNotIn("200", results, "no attacker chain was accepted")


class AiaBundle(unittest.TestCase):
    """An AIA answer is parsed and searched within small bounds (kAiaMaxBytes, kAiaCertificates):
    any chain can make the server fetch one, and each copy of a certificate naming the right
    issuer costs a path building on the store's thread."""

    @classmethod
    def setUpClass(cls):
        cls.web = F.Listener(BUNDLE, {"/bundle.pem": F.read("bundle.pem"), "/bundle.p7c": F.read("bundle.p7c")})
        cls.server = Server(site(P_BUNDLE, 10000), server_extra=f'cache_dir = ""\nmax_fetch_bytes = {64 << 20}').start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.web.stop()

    def test_huge_bundles_cost_little(self):
        pid = self.server.proc.pid
        before = cpu_seconds(pid)
        for kind in ("pem", "p7c"):
            r = F.request(P_BUNDLE, f"bundle-{kind}", kind)
            self.assertEqual(r.code(), "403.16", r.text)
        self.assertEqual(self.web.count("/bundle."), 2, self.web.hits)
        used = cpu_seconds(pid) - before
        self.assertLess(used, 0.5, f"two AIA answers cost {used:.2f} s of CPU")


class AiaCannotEvict(unittest.TestCase):
    """Issuer certificates from AIA are bounded on their own: an untrusted chain can have one
    cached (a copy of a trusted CA certificate served at a URL of its own), so enough of them
    must not push the cached CRLs, and their persisted copies, out of the store."""

    @classmethod
    def setUpClass(cls):
        issuing = F.der_of(f("issuing.pem"))
        cls.web = F.Listener(WEB, {"/good.crl": F.read("issuing.crl")})
        cls.copies = F.Listener(COPIES, {f"/copy{i}.cer": issuing for i in range(N_COPIES)})
        cls.cache_dir = tempfile.mkdtemp(prefix="certgate-redfetch-cache-")
        cls.server = Server(site(P_EVICT, 3000),
                            server_extra=f'cache_dir = "{cls.cache_dir}"\nrevocation_cache_entries = 16\n'
                                         f'admin_listen = "127.0.0.1:{P_EVICT_ADMIN}"').start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.web.stop()
        cls.copies.stop()
        shutil.rmtree(cls.cache_dir, ignore_errors=True)

    def persisted(self):
        found = []
        for root_dir, _, files in os.walk(self.cache_dir):
            found += [n for n in files if n.endswith(".crl")]
        return found

    def test_aia_copies_do_not_evict_crls(self):
        r = F.request(P_EVICT, "good", "good1")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(len(self.persisted()), 1)
        for i in range(N_COPIES):
            r = F.request(P_EVICT, f"copy{i}", f"copy{i}")
            self.assertEqual(r.code(), "403.16", r.text)
        self.assertGreaterEqual(self.copies.count("/copy"), N_COPIES, "each attacker leaf had its issuer fetched")
        self.assertEqual(len(self.persisted()), 1, "the persisted CRL is still there")
        self.assertIn('certgate_revocation_cache_entries{kind="crl"} 1', F.metrics(P_EVICT_ADMIN))
        r = F.request(P_EVICT, "good", "good2")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(self.web.count("/good.crl"), 1, "the cached CRL served the second request")


class AiaPacing(unittest.TestCase):
    """An AIA answer that vouches for no issuer of one certificate says nothing about another
    certificate naming the same URL and issuer: it must not pace that one's fetch."""

    @classmethod
    def setUpClass(cls):
        cls.web = F.Listener(WEB, {"/good.crl": F.read("issuing.crl"), "/issuing.cer": F.der_of(f("issuing.pem"))})
        cls.server = Server(site(P_PACE, 3000), server_extra='cache_dir = ""').start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.web.stop()

    def test_attacker_leaf_does_not_pace_the_issuer_url(self):
        r = F.request(P_PACE, "shadow", "shadow")
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertEqual(self.web.count("/issuing.cer"), 1)
        r = F.request(P_PACE, "alone", "alone")  # well within retry_seconds (30)
        self.assertEqual(r.status, 200, r.text)


class Blackhole:
    """A port whose connections never complete: a listener with a full backlog that never
    accepts, so the kernel drops further SYNs (a host that does not answer)."""

    def __init__(self, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(0)
        self.fillers = []
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            self.fillers.append(c)
        time.sleep(0.2)

    def stop(self):
        for c in self.fillers:
            c.close()
        self.sock.close()


class LdapOneHost(unittest.TestCase):
    """url_timeout_ms bounds an ldap:// fetch: a URL naming several hosts is refused, not tried
    host after host, each for the whole timeout."""

    @classmethod
    def setUpClass(cls):
        cls.hole = Blackhole(HOLD)
        cls.server = Server(site(P_HOSTS, 500), server_extra='cache_dir = ""').start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.hole.stop()

    def test_host_list_is_not_tried_host_by_host(self):
        started = time.monotonic()
        r = F.request(P_HOSTS, "hosts", "hosts")
        took = time.monotonic() - started
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertLess(took, 1.5, f"the fetch took {took:.1f} s for url_timeout_ms = 500")


class LdapFairShare(unittest.TestCase):
    """ldap:// AIA fetches (any chain can cause them) take at most half of the fetch slots: a
    trusted client's directory CRL does not wait behind a flood of them."""

    @classmethod
    def setUpClass(cls):
        cls.hole = Blackhole(BLACK)
        cls.ldap = HugeLdap(LDAP_CRL, 0, value=F.read("issuing.crl"), vtype=b"certificateRevocationList;binary")
        cls.server = Server(site(P_LFAIR, 2000), server_extra='cache_dir = ""').start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.ldap.stop()
        cls.hole.stop()

    def test_directory_crl_is_not_starved_by_ldap_aia_flood(self):
        def hog(i):
            try:
                F.request(P_LFAIR, f"lhog{i}", f"lhog{i}")
            except Exception:  # noqa: BLE001
                pass

        for i in range(N_LDAP_HOGS):
            threading.Thread(target=hog, args=(i,), daemon=True).start()
        time.sleep(0.5)  # every hog's fetch started or queued
        started = time.monotonic()
        r = F.request(P_LFAIR, "ldapgood", "ldapgood")
        took = time.monotonic() - started
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(self.ldap.searches, 1)
        self.assertLess(took, 1.5, f"the directory CRL waited {took:.1f} s behind the flood")


class AiaPerIssuer(unittest.TestCase):
    """What one URL answered for one issuer is cached for that issuer only: an attacker asking
    a bundle URL for another issuer first must not keep a legitimate client's issuer out."""

    @classmethod
    def setUpClass(cls):
        cls.web = F.Listener(WEB, {"/good2.crl": F.read("issuing2.crl"),
                                   "/both.pem": F.read("issuing.pem") + F.read("issuing2.pem")})
        cls.server = Server(site(P_BUNDLE2, 3000), server_extra='cache_dir = ""').start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.web.stop()

    def test_attacker_cannot_pin_a_bundle_url_to_another_issuer(self):
        r = F.request(P_BUNDLE2, "squatter", "squatter")  # caches Red Issuing CA for both.pem
        self.assertEqual(r.code(), "403.16", r.text)
        self.assertEqual(self.web.count("/both.pem"), 1)
        r = F.request(P_BUNDLE2, "alone2", "alone2")
        self.assertEqual(r.status, 200, r.text)


class SlowDns:
    """A nameserver answering 127.0.0.1 for every name but those starting with "slow", which it
    never answers (a zone an attacker runs, answering nothing)."""

    def __init__(self, addr):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 53))
        self.asked = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                q, peer = self.sock.recvfrom(512)
            except OSError:
                return
            i, labels = 12, []
            while q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode())
                i += 1 + q[i]
            qtype = int.from_bytes(q[i + 1:i + 3], "big")
            question = q[12:i + 5]
            self.asked.append(".".join(labels))
            if labels[0].startswith("slow"):
                continue
            answer = b""
            if qtype == 1:
                answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([127, 0, 0, 1])
            head = q[:2] + b"\x81\x80\x00\x01" + (b"\x00\x01" if answer else b"\x00\x00") + b"\x00\x00\x00\x00"
            self.sock.sendto(head + question + answer, peer)

    def stop(self):
        self.sock.close()


@unittest.skipUnless(shutil.which("unshare") and os.geteuid() == 0, "needs root and unshare(1) for a resolv.conf of its own")
class SlowNames(unittest.TestCase):
    """Names in caIssuers URLs (any chain can make the server look one up) are resolved apart
    from names in distribution points: a flood of names whose lookup hangs must not make a
    trusted client's CRL fetch time out."""

    @classmethod
    def setUpClass(cls):
        try:
            cls.dns = SlowDns(DNS_ADDR)
        except OSError as e:
            raise unittest.SkipTest(f"cannot listen on {DNS_ADDR}:53: {e}")
        cls.tmp = tempfile.mkdtemp(prefix="certgate-redfetch-dns-")
        with open(os.path.join(cls.tmp, "resolv.conf"), "w") as out:
            out.write(f"nameserver {DNS_ADDR}\noptions timeout:4 attempts:1\n")
        wrapper = os.path.join(cls.tmp, "certgate")
        with open(wrapper, "w") as out:
            out.write("#!/bin/sh\nexec unshare -m sh -c 'mount --bind \"$1\" /etc/resolv.conf && shift && exec \"$@\"' "
                      f"sh {cls.tmp}/resolv.conf {os.path.abspath(os.environ['CERTGATE'])} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        cls.web = F.Listener(DNS_WEB, {"/good.crl": F.read("issuing.crl")})
        import harness
        saved, harness.CERTGATE = harness.CERTGATE, wrapper
        try:
            cls.server = Server(site(P_DNS, 2000), server_extra='cache_dir = ""').start()
        finally:
            harness.CERTGATE = saved

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.web.stop()
        cls.dns.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_trusted_name_is_not_stuck_behind_hanging_lookups(self):
        def hog(i):
            try:
                F.request(P_DNS, f"dnshog{i}", f"dnshog{i}")
            except Exception:  # noqa: BLE001
                pass

        for i in range(4):
            threading.Thread(target=hog, args=(i,), daemon=True).start()
        deadline = time.monotonic() + 5
        while not any(n.startswith("slow") for n in self.dns.asked) and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        r = F.request(P_DNS, "named", "named")
        took = time.monotonic() - started
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(self.web.count("/good.crl"), 1)
        self.assertLess(took, 1.5, f"the trusted CRL fetch took {took:.1f} s")


if __name__ == "__main__":
    unittest.main()
