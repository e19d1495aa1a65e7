#!/usr/bin/env python3
"""Serves one file over HTTPS on 127.0.0.1, for the gateway's TLS tests.

Usage: https_file_server.py PORT CERT KEY FILE

Every GET answers FILE as application/json, but for an OpenID Connect discovery document
(`/.well-known/openid-configuration`), which names this server's `/jwks.json`; the count of
answers is written to FILE.hits.
"""
import http.server
import ssl
import sys

port, cert, key, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
hits = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        global hits
        hits += 1
        with open(path + ".hits", "w") as f:
            f.write(str(hits))
        if self.path.endswith("/.well-known/openid-configuration"):
            body = (
                '{"issuer":"https://issuer.test","jwks_uri":"https://127.0.0.1:%d/jwks.json"}'
                % port
            ).encode()
        else:
            with open(path, "rb") as f:
                body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
