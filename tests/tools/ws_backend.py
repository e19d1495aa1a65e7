"""The backend of the WebSocket tests: it receives the events of `websocket.yaml`'s routes and
answers through the gateway's `@connections` management API, as a backend of API Gateway does.

Usage: ws_backend.py PORT_FILE EVENTS_LOG ADMIN_URL ADMIN_TOKEN
- Listens on 127.0.0.1 (any port), writes the port to PORT_FILE.
- Appends every event it gets, with the `X-Gateway-*` headers that came with it, as one JSON
  line to EVENTS_LOG: {"path": ..., "headers": {...}, "event": {...}}.
- /connect: 200, or 403 when the handshake's query has `room=closed`; with
  `Sec-WebSocket-Protocol: chat, other` it picks `chat` (with `X-Pick: P`, it picks P).
- /echo: answers `echo: TEXT` (the message's `text`).
- /notify: answers 200 at once, then POSTs `notified: TEXT` for the connection to
  ADMIN_URL/@connections/ID (Bearer ADMIN_TOKEN), and, when the message names a `to`, to that
  connection too (another client, possibly on another gateway instance). What the management
  API answered is appended to EVENTS_LOG as {"posted": STATUS, "to": ID}.
- /disconnect: 200.
"""

import json
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, LOG, ADMIN_URL, ADMIN_TOKEN = sys.argv[1:5]
lock = threading.Lock()
log = open(LOG, "a", buffering=1)


def record(entry):
    with lock:
        log.write(json.dumps(entry) + "\n")


def post(connection, text):
    req = urllib.request.Request(
        f"{ADMIN_URL}/@connections/{urllib.request.quote(connection, safe='')}",
        data=text.encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    record({"posted": status, "to": connection})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        event = json.loads(self.rfile.read(length) or b"{}")
        gw = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-")}
        record({"path": self.path, "headers": gw, "event": event})
        context = event.get("requestContext", {})
        if self.path == "/connect":
            query = event.get("queryStringParameters") or {}
            if query.get("room") == "closed":
                return self.answer(403)
            headers = event.get("headers") or {}
            offered = headers.get("sec-websocket-protocol", "")
            picked = [("Sec-WebSocket-Protocol", "chat")] if "chat" in offered else []
            if headers.get("x-pick"):
                picked = [("Sec-WebSocket-Protocol", headers["x-pick"])]
            return self.answer(200, headers=picked)
        message = json.loads(event.get("body") or "{}")
        if self.path == "/echo":
            return self.answer(200, f"echo: {message.get('text')}".encode())
        if self.path == "/notify":
            self.answer(200)
            me = context["connectionId"]
            text = f"notified: {message.get('text')}"
            targets = [me] + ([message["to"]] if message.get("to") else [])
            threading.Thread(target=lambda: [post(t, text) for t in targets]).start()
            return None
        return self.answer(200)


class Server(ThreadingHTTPServer):
    # A gateway stopped by a test drops its pooled connections: not worth a traceback.
    def handle_error(self, request, client_address):
        pass


server = Server(("127.0.0.1", 0), Handler)
with open(PORT_FILE, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
