#!/usr/bin/env python3
"""A small RFC 3161 time-stamp authority on loopback, for the tests.

Python's standard library only; every token is made by `openssl ts -reply`.
scripts/tsa.sh creates the keys, certificates and openssl configs and starts
this server; run it by hand as

    python3 scripts/tsa.py STATE_DIR

It binds 127.0.0.1 on a free port, writes the port to STATE_DIR/port and
serves, over HTTP/1.1 (RFC 3161 section 3.4):

    POST /tsa        the trusted TSA (STATE_DIR/trusted/ts.cnf)
    POST /untrusted  a second, independent TSA with its own root CA
                     (STATE_DIR/untrusted/ts.cnf), for "untrusted TSA" tests
    GET  /health     "ok"

A POST must carry Content-Type: application/timestamp-query; the answer is
the DER TimeStampResp with Content-Type: application/timestamp-reply. A query
openssl cannot read still gets a TimeStampResp (status rejection), as a
real TSA would answer. Requests to one TSA are serialised: `openssl ts
-reply` increments the serial-number file.
"""

import http.server
import os
import subprocess
import sys
import tempfile
import threading

MAX_QUERY = 64 * 1024
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


class Tsa:
    def __init__(self, state, name):
        self.dir = os.path.join(state, name)
        self.config = os.path.join(self.dir, "ts.cnf")
        self.lock = threading.Lock()
        if not os.path.isfile(self.config):
            sys.exit(f"tsa.py: no {self.config}; scripts/tsa.sh start makes it")

    def reply(self, query: bytes) -> bytes:
        with self.lock, tempfile.TemporaryDirectory(dir=self.dir) as tmp:
            q = os.path.join(tmp, "q.tsq")
            r = os.path.join(tmp, "r.tsr")
            with open(q, "wb") as f:
                f.write(query)
            proc = subprocess.run(
                ["openssl", "ts", "-reply", "-config", self.config,
                 "-queryfile", q, "-out", r],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            # openssl exits 0 with a rejection response for a bad query; a
            # missing output file is a broken setup, not a client error.
            if not os.path.isfile(r) or os.path.getsize(r) == 0:
                raise RuntimeError(proc.stderr.decode(errors="replace").strip())
            with open(r, "rb") as f:
                return f.read()


def make_handler(tsas):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "decom-test-tsa/1"

        def send(self, code, ctype, body):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                self.send(200, "text/plain", b"ok\n")
            else:
                self.send(404, "text/plain", b"not found\n")

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            tsa = tsas.get(path)
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self.send(411, "text/plain", b"Content-Length required\n")
                return
            if length < 0 or length > MAX_QUERY:
                self.close_connection = True
                self.send(413, "text/plain", b"query too large\n")
                return
            query = self.rfile.read(length)
            if tsa is None:
                self.send(404, "text/plain", b"no TSA at this path\n")
                return
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype != QUERY_TYPE:
                self.send(415, "text/plain", f"Content-Type must be {QUERY_TYPE}\n".encode())
                return
            try:
                body = tsa.reply(query)
            except Exception as e:  # noqa: BLE001 - report any failure to the client
                self.send(500, "text/plain", f"openssl ts -reply failed: {e}\n".encode())
                return
            self.send(200, REPLY_TYPE, body)

        def log_message(self, fmt, *args):
            sys.stderr.write("tsa.py: %s %s\n" % (self.address_string(), fmt % args))
            sys.stderr.flush()

    return Handler


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tsa.py STATE_DIR")
    state = os.path.abspath(sys.argv[1])
    tsas = {"/tsa": Tsa(state, "trusted"), "/untrusted": Tsa(state, "untrusted")}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(tsas))
    server.daemon_threads = True
    port_file = os.path.join(state, "port")
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{server.server_address[1]}\n")
    os.replace(port_file + ".tmp", port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
