"""An upstream for the several-targets tests: a real process that can be killed and restarted.

Usage: counting_upstream.py PORT_FILE NAME LOG [PORT] [MODE]
- Listens on 127.0.0.1:PORT (0: any), writes the port to PORT_FILE.
- Answers every request 200 (201 for POST) with {"name": NAME}; MODE `sick` answers 503 instead,
  `slow` waits a second first. GET /health is 200 (503 when sick).
- GET .../events streams six server-sent events, one every 300 ms, chunked.
- Appends "METHOD ID" to LOG for every request, ID being its X-Request-Id, so a test can see
  what reached it even after it is killed.
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, NAME, LOG = sys.argv[1], sys.argv[2], sys.argv[3]
PORT = int(sys.argv[4]) if len(sys.argv) > 4 else 0
MODE = sys.argv[5] if len(sys.argv) > 5 else "ok"
log = open(LOG, "a", buffering=1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status):
        data = json.dumps({"name": NAME}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def serve(self, ok):
        length = int(self.headers.get("Content-Length", "0"))
        if length:
            self.rfile.read(length)
        if self.path == "/health":
            return self.answer(503 if MODE == "sick" else 200)
        log.write("%s %s\n" % (self.command, self.headers.get("X-Request-Id", "-")))
        if self.path.endswith("/events"):
            return self.events()
        if MODE == "slow":
            time.sleep(1)
        self.answer(503 if MODE == "sick" else ok)

    def events(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(6):
            data = ("id: %d\ndata: {\"n\": %d}\n\n" % (i, i)).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(0.3)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self):
        self.serve(200)

    def do_POST(self):
        self.serve(201)


ThreadingHTTPServer.allow_reuse_address = True
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
