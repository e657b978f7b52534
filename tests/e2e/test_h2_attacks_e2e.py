"""HTTP/2 limits and the known HTTP/2 attacks, with raw frames (tests/e2e/h2frames.py): max
concurrent streams, header list size, HPACK bomb, rapid reset (CVE-2023-44487), CONTINUATION
flood (CVE-2024-27316), SETTINGS and PING floods, idle and slow-reading clients, flow control,
and GOAWAY on graceful shutdown and reload. docs/security.md "HTTP/2"."""
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, free_port  # noqa: E402
from h2frames import (ACK, CANCEL, CONTINUATION, DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, GOAWAY,  # noqa: E402
                      HEADERS, NO_ERROR, PING, REFUSED_STREAM, RST_STREAM, SETTINGS, WINDOW_UPDATE, Client, frame,
                      goaway_code, goaway_last_stream, literal, request_block)

P = free_port()
Q = free_port()

LOG = """
  [sites.log]
  fields = ["date", "time", "cs-method", "cs-uri-stem", "cs-uri-query", "sc-status", "sc-substatus", "cs-version"]
"""


def site(port):
    return f"""
[[sites]]
name = "H2"
id = 1
root = "www"
ssl_flags = ["Ssl"]
  [[sites.bindings]]
  listen = "127.0.0.1:{port}"
  certificate = "@PKI@/server-chain.pem"
  key = "@PKI@/server.key"
""" + LOG


LIMITS = """
max_header_bytes = 4096
keepalive_timeout_ms = 1000
body_timeout_ms = 1000
h2_max_concurrent_streams = 2
h2_reset_burst = 20
h2_resets_per_second = 1
"""

BIG = 2 * 1024 * 1024
server = None


def make_big(srv):
    with open(os.path.join(srv.dir, "www", "big.bin"), "wb") as f:
        f.write(b"x" * BIG)


def setUpModule():
    global server
    server = Server(site(P), server_extra=LIMITS)
    make_big(server)
    server.start()


def tearDownModule():
    assert server.stop() == 0


def flood(client, one, count):
    """Sends `count` copies of `one` without reading; the server may close meanwhile."""
    chunk = one * 4096
    try:
        for _ in range(count // 4096):
            client.send(chunk)
    except OSError:
        pass


def answered(c, stream):
    """Reads up to the end of `stream`'s answer (streams one at a time: the server here
    allows only two open at once)."""
    frames = c.frames_until(lambda f: f is None or (f[2] == stream and f[1] & END_STREAM))
    assert frames[-1] is not None, f"the connection ended before stream {stream} was answered"


class Limits(unittest.TestCase):
    def test_streams_over_max_concurrent_streams_are_refused(self):
        c = Client(P)
        # Three requests for a file larger than the window: the first two stay open.
        c.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, sid, request_block(f"/big.bin?mcs{sid}"))
                        for sid in (1, 3, 5)))
        frames = c.frames_until(lambda f: f[0] == RST_STREAM and f[2] == 5)
        self.assertIsNotNone(frames[-1], "no RST_STREAM for the third stream")
        self.assertEqual(int.from_bytes(frames[-1][3], "big"), REFUSED_STREAM)
        # The first stream's answer may still be on its way (the file is read off the loop, and
        # the third stream is refused at once): a stream cut before it is answered has no W3C
        # line, so wait for its HEADERS before hanging up.
        if not any(f is not None and f[0] == HEADERS and f[2] == 1 for f in frames):
            more = c.frames_until(lambda f: f[0] == HEADERS and f[2] == 1)
            self.assertIsNotNone(more[-1], "no answer for the first stream")
        c.close()
        self.assertEqual(server.log_entry("mcs1")["sc-status"], "200")

    def test_header_list_over_max_header_bytes_is_431(self):
        c = Client(P)
        c.get(1, "/?big-head", extra=literal("x-big", "a" * 6000))
        answered(c, 1)
        c.get(3, "/?after-big-head")
        answered(c, 3)
        c.close()
        entry = server.log_entry("big-head")
        self.assertEqual((entry["sc-status"], entry["cs-version"]), ("431", "HTTP/2"))
        self.assertEqual(server.log_entry("after-big-head")["sc-status"], "200")

    def test_hpack_bomb_is_counted_at_its_decoded_size(self):
        c = Client(P)
        # One 3 KB entry in the dynamic table (index 62), then a block of 15000 one-byte
        # references to it: 45 MB once decoded.
        c.get(1, "/?bomb-seed", extra=literal("x-seed", "s" * 3000, index=True))
        answered(c, 1)
        c.headers(3, request_block("/?bomb") + b"\xbe" * 15000)
        answered(c, 3)
        c.get(5, "/?after-bomb")
        answered(c, 5)
        c.close()
        self.assertEqual(server.log_entry("bomb-seed")["sc-status"], "200")
        self.assertEqual(server.log_entry("bomb")["sc-status"], "431")
        self.assertEqual(server.log_entry("after-bomb")["sc-status"], "200")


class Attacks(unittest.TestCase):
    def test_rapid_reset_exhausts_the_budget_and_gets_goaway(self):
        c = Client(P)
        burst = b"".join(frame(HEADERS, END_HEADERS | END_STREAM, sid, request_block("/?rr")) +
                         frame(RST_STREAM, 0, sid, CANCEL.to_bytes(4, "big")) for sid in range(1, 400, 2))
        try:
            c.send(burst)
        except OSError:
            pass
        frames = c.frames_until(lambda f: f is None or f[0] == GOAWAY)
        self.assertIsNotNone(frames[-1], "closed without GOAWAY")
        self.assertNotEqual(goaway_code(frames[-1][3]), NO_ERROR)
        self.assertIsNone(c.frames_until(lambda f: f is None)[-1])  # then closed
        c.close()

    def test_continuation_flood_is_cut(self):
        c = Client(P)
        c.send(frame(HEADERS, END_STREAM, 1, request_block("/?cont")))
        one = frame(CONTINUATION, 0, 1, literal("x-a", "b"))
        t = threading.Thread(target=flood, args=(c, one, 100000))
        t.start()
        # The server ends the connection (a read that timed out instead would raise). Its GOAWAY
        # may be lost to the reset its close causes while flood bytes are still unread.
        frames = c.frames_until(lambda f: f is None)
        t.join()
        c.close()
        goaways = [f for f in frames if f and f[0] == GOAWAY]
        self.assertTrue(all(goaway_code(f[3]) != NO_ERROR for f in goaways))
        self.assertFalse(any(f and f[0] == HEADERS for f in frames), "the endless head was answered")

    def flood_unread(self, one, ack_type):
        c = Client(P)
        sent = 1 << 20
        flood(c, one, sent)
        acks = 0
        while True:
            f = c.read_frame()
            if f is None:
                break
            if f[0] == ack_type and f[1] & ACK:
                acks += 1
        c.close()
        # The server stopped answering and closed: it did not queue an answer per frame.
        self.assertLess(acks, sent)

    def test_settings_flood_from_a_client_that_does_not_read(self):
        self.flood_unread(frame(SETTINGS, 0, 0), SETTINGS)

    def test_ping_flood_from_a_client_that_does_not_read(self):
        self.flood_unread(frame(PING, 0, 0, b"12345678"), PING)


class Clients(unittest.TestCase):
    def test_idle_connection_gets_goaway_then_close(self):
        c = Client(P)
        frames = c.frames_until(lambda f: f is None or f[0] == GOAWAY)
        self.assertIsNotNone(frames[-1])
        self.assertEqual(goaway_code(frames[-1][3]), NO_ERROR)
        self.assertIsNone(c.frames_until(lambda f: f is None)[-1])
        c.close()

    def test_slow_reader_gets_one_window_then_is_closed(self):
        c = Client(P)
        c.get(1, "/big.bin?slow")
        data = 0
        while True:
            f = c.read_frame()
            if f is None:
                break
            if f[0] == DATA and f[2] == 1:
                data += len(f[3])
        c.close()
        # The stream's window (65535 bytes, never opened further) is all the server sent: the
        # rest of the 2 MB file stayed on disk, and the connection was cut at body_timeout_ms.
        self.assertEqual(data, 65535)
        self.assertEqual(server.log_entry("slow")["sc-status"], "200")


class Lifecycle(unittest.TestCase):
    def start(self):
        srv = Server(site(Q))
        make_big(srv)
        return srv.start()

    def test_shutdown_sends_goaway_and_finishes_the_open_stream(self):
        srv = self.start()
        try:
            c = Client(Q)
            c.get(1, "/big.bin?drain")
            c.frames_until(lambda f: f is None or f[0] == DATA)
            srv.proc.send_signal(signal.SIGTERM)
            frames = c.frames_until(lambda f: f is None or f[0] == GOAWAY)
            self.assertIsNotNone(frames[-1])
            self.assertEqual((goaway_code(frames[-1][3]), goaway_last_stream(frames[-1][3])), (NO_ERROR, 1))
            got = sum(len(f[3]) for f in frames if f and f[0] == DATA)
            # Open the windows: the stream already accepted is still answered in full.
            c.send(frame(WINDOW_UPDATE, 0, 0, (BIG * 2).to_bytes(4, "big")) +
                   frame(WINDOW_UPDATE, 0, 1, (BIG * 2).to_bytes(4, "big")))
            rest = c.frames_until(lambda f: f is None or (f[0] == DATA and f[2] == 1 and f[1] & END_STREAM))
            self.assertIsNotNone(rest[-1], "the stream was cut")
            got += 65535 + sum(len(f[3]) for f in rest if f and f[0] == DATA)
            self.assertGreaterEqual(got, BIG)
            c.close()
            srv.proc.wait(15)
            self.assertEqual(srv.proc.returncode, 0)
        finally:
            srv.stop()

    def test_reload_sends_goaway_and_answers_the_stream(self):
        srv = self.start()
        try:
            c = Client(Q)
            c.get(1, "/?before-reload")
            c.frames_until(lambda f: f is None or (f[2] == 1 and f[1] & END_STREAM))
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 5
            while "reloaded" not in srv.stderr_text() and time.time() < deadline:
                time.sleep(0.05)
            c.get(3, "/?after-reload")
            frames = c.frames_until(lambda f: f is None or (f[2] == 3 and f[1] & END_STREAM))
            self.assertIsNotNone(frames[-1])
            self.assertTrue(any(f and f[0] == GOAWAY and goaway_code(f[3]) == NO_ERROR for f in frames))
            self.assertEqual(srv.log_entry("after-reload")["sc-status"], "200")
            c.close()
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
