"""A stand-in for the AWS Lambda service on loopback, for the gateway's SigV4 tests.

It answers the Invoke call (POST /2015-03-31/functions/NAME/invocations) only when the request's
SigV4 signature is the one botocore, AWS's own Python signer, computes for the same request with
the expected credentials; otherwise 403, as AWS does. It also serves container credentials
(GET /creds) that rotate on every fetch and expire soon, so refreshing can be tested, and the same
as an EC2 instance's role through IMDSv2 (PUT /latest/api/token, then /latest/meta-data/...).

Usage: fake_lambda.py PORT_FILE; expected keys in ACCESS_KEY, SECRET_KEY (and SESSION_TOKEN).
Functions: `fails` reports an unhandled error; any other echoes the event and the function name.
"""

import datetime
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LOCK = threading.Lock()
STATE = {
    "keys": [(os.environ["ACCESS_KEY"], os.environ["SECRET_KEY"], os.environ.get("SESSION_TOKEN"))],
    "fetches": 0,
    "invocations": 0,
    "rejected": 0,
}


def verify(handler, body):
    auth = handler.headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False, "no SigV4 Authorization"
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    access_key, date, region, service, _ = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    with LOCK:
        keys = [k for k in STATE["keys"] if k[0] == access_key]
    if not keys:
        return False, "unknown access key " + access_key
    _, secret, token = keys[-1]
    headers = {h: handler.headers[h] for h in signed}
    req = AWSRequest(method=handler.command, url="http://" + handler.headers["Host"] + handler.path,
                     data=body, headers=headers)
    req.context["timestamp"] = handler.headers["X-Amz-Date"]
    signer = SigV4Auth(Credentials(access_key, secret, token), service, region)
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    if expected != fields["Signature"]:
        return False, "signature mismatch; canonical request was:\n" + canonical
    if token is not None and handler.headers.get("X-Amz-Security-Token") != token:
        return False, "missing session token"
    if "x-amz-security-token" not in signed and token is not None:
        return False, "session token not signed"
    if service != "lambda" or date != handler.headers["X-Amz-Date"][:8]:
        return False, "wrong scope"
    return True, region


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, payload, headers=()):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        # IMDSv2: a session token first.
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            data = b"imds-session-token"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.answer(403, {"message": "no"})

    def do_GET(self):
        if self.path.startswith("/latest/meta-data/"):
            if self.headers.get("X-aws-ec2-metadata-token") != "imds-session-token":
                return self.answer(401, {"message": "IMDSv2 token missing"})
            if self.path == "/latest/meta-data/iam/security-credentials/":
                data = b"gateway-role"
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if self.path == "/latest/meta-data/iam/security-credentials/gateway-role":
                return self.credentials()
        if self.path == "/state":
            with LOCK:
                return self.answer(200, {k: v for k, v in STATE.items() if k != "keys"})
        if self.path == "/creds":
            if self.headers.get("Authorization") != os.environ.get("CONTAINER_TOKEN"):
                return self.answer(401, {"message": "bad container token"})
            return self.credentials()
        self.answer(404, {"message": "not found"})

    def credentials(self):
        """New keys on every fetch, expiring in 305 s (whole seconds)."""
        with LOCK:
            STATE["fetches"] += 1
            n = STATE["fetches"]
            key = ("ASIAROTATED%d" % n, "rotated-secret-%d" % n, "token-%d" % n)
            STATE["keys"].append(key)
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=305)
        self.answer(200, {"AccessKeyId": key[0], "SecretAccessKey": key[1], "Token": key[2],
                          "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        prefix, suffix = "/2015-03-31/functions/", "/invocations"
        if not (self.path.startswith(prefix) and self.path.endswith(suffix)):
            return self.answer(404, {"message": "not found"})
        ok, why = verify(self, body)
        if not ok:
            with LOCK:
                STATE["rejected"] += 1
            sys.stderr.write("rejected: %s\n" % why)
            return self.answer(403, {"message": "The request signature we calculated does not match the signature you provided."})
        name = unquote(self.path[len(prefix):-len(suffix)])
        with LOCK:
            STATE["invocations"] += 1
        if name.endswith("fails"):
            return self.answer(200, {"errorMessage": "boom", "errorType": "Exception"},
                               [("X-Amz-Function-Error", "Unhandled")])
        event = json.loads(body)
        self.answer(200, {"statusCode": 200, "headers": {"content-type": "application/json"},
                          "body": json.dumps({"event": event, "function": name, "region": why})})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
