#!/usr/bin/env python3
"""User-space instructions per request of the gateway's routes in `specs/performance.yaml`, counted
by callgrind: a figure that does not move with whatever else the machine is doing.

Usage: python3 bench/instructions.py [--only cfd] [--seconds 5]

Needs valgrind, wrk, nginx and openssl (Debian: `apt-get install valgrind wrk nginx-light openssl`).

For each route, (c) GET /plain, (f) the GET with validated path and query parameters, (d) the POST
with a JWT, a throttle and a validated body, (h) the plain route with header transforms, (i) the
POST of (d) proxied unchecked (the targets of `bench/proxy_vs_nginx.py`; `--only` picks them,
default `cfd`):

1. starts the upstream nginx, a JWKS server, and the gateway with one serving thread
   (`GWGEN_RUNTIME=current_thread`) under `valgrind --tool=callgrind`;
2. warms it up for a second with wrk (4 connections), then loads it for `--seconds`;
3. stops it, and divides the instructions counted outside start-up (everything but
   `gwgen_runtime::binary::main_with`, which builds the gateway) by the requests its access log
   shows. Work done once (loading the system's CA certificates, the first RS256 signature check)
   is spread over the requests, a few hundred instructions each at this load.

`--keep DIR` keeps each route's callgrind output (`DIR/callgrind-X.out`) for `callgrind_annotate`.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port  # noqa: E402
from proxy_vs_nginx import CHECKED, make_token, order_body  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUTES = {"c": ("plain proxy route", "/plain"), "f": ("validated path + query GET", CHECKED),
          "d": ("JWT + throttle + validation", "/orders"),
          "h": ("plain route with header transforms", "/plain-transformed"),
          "i": ("the POST of (d) unchecked", "/orders-plain")}


def total(out, inclusive_of=None):
    args = ["callgrind_annotate"] + (["--inclusive=yes"] if inclusive_of else []) + [out]
    text = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    for line in text.splitlines():
        if (inclusive_of and inclusive_of in line) or (not inclusive_of and "PROGRAM TOTALS" in line):
            return int(line.split()[0].replace(",", ""))
    return 0


def answered(key, log_path):
    """The requests a gateway's access log shows; exits unless every one was answered 2xx."""
    with open(log_path) as f:
        statuses = re.findall(r'"status":(\d+)', f.read())
    if not statuses or any(not s.startswith("2") for s in statuses):
        sys.exit(f"({key}): {len(statuses)} requests, not all answered 2xx")
    return len(statuses)


def upstreams(work):
    """The routes' surroundings in `work`: wrk's script for the POST routes (a signed token, the
    order body), the upstream nginx (one worker) and the JWKS server. Returns the script's path,
    the upstream's and the JWKS server's ports, and their processes, once both listen."""
    token = make_token(work)
    post = os.path.join(work, "post.lua")
    with open(post, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
        f.write(f"wrk.body = {json.dumps(order_body())}\n")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    up_port, jwks_port = free_port(), free_port()
    with open(os.path.join(ROOT, "bench", "nginx", "upstream.conf")) as f:
        conf = f.read().replace("@WORKERS@", "1").replace("@PORT@", str(up_port)).replace("@DIR@", work)
    with open(os.path.join(work, "upstream.conf"), "w") as f:
        f.write(conf)
    procs = [subprocess.Popen([nginx, "-p", work, "-c", os.path.join(work, "upstream.conf")]),
             subprocess.Popen([sys.executable, "-m", "http.server", str(jwks_port), "--bind", "127.0.0.1",
                               "--directory", os.path.join(work, "jwks")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        wait_port(up_port, procs[0])
        wait_port(jwks_port, procs[1])
    except BaseException:
        for p in procs:
            p.terminate()
        raise
    return post, up_port, jwks_port, procs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="cfd")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--keep")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_annotate", "wrk", "nginx", "openssl"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is needed")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gwgen"], cwd=ROOT, check=True)
    gwgen = os.path.join(ROOT, "target", "release", "gwgen")
    binary = subprocess.run([gwgen, "build", "--release", os.path.join(ROOT, "specs", "performance.yaml")],
                            check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    work = tempfile.mkdtemp(prefix="gwgen-instructions-")
    post, up_port, jwks_port, procs = upstreams(work)
    rows = []
    try:
        for key in args.only:
            name, path = ROUTES[key]
            out = os.path.join(args.keep or work, f"callgrind-{key}.out")
            log_path = os.path.join(work, f"gateway-{key}.log")
            port = free_port()
            env = {**os.environ, "GWGEN_RUNTIME": "current_thread", "UPSTREAM_PORT": str(up_port),
                   "JWKS_URL": f"http://127.0.0.1:{jwks_port}/jwks.json"}
            with open(log_path, "w") as log:
                gw = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary,
                                       "--listen", f"127.0.0.1:{port}"], env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
            try:
                wait_port(port, gw)
                script = ["-s", post] if key in "di" else []
                url = f"http://127.0.0.1:{port}{path}"
                for seconds in (1, args.seconds):
                    subprocess.run(["wrk", "-t1", "-c4", f"-d{seconds}s", *script, url], check=True,
                                   stdout=subprocess.DEVNULL)
            finally:
                gw.terminate()
                gw.wait(timeout=60)
            served = answered(key, log_path)
            per = (total(out) - total(out, "gwgen_runtime::binary::main_with")) // served
            rows.append((f"({key}) {name}", served, per))
    finally:
        for p in procs:
            p.terminate()
        shutil.rmtree(work, ignore_errors=True)
    print("| route | requests | instructions/request |\n|---|---:|---:|")
    for name, n, per in rows:
        print(f"| {name} | {n:,} | {per:,} |")


if __name__ == "__main__":
    main()
