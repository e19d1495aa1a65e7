#!/usr/bin/env python3
"""Benchmark: the gateway against nginx and against the upstream directly, in one run.

Usage: python3 bench/proxy_vs_nginx.py [--seconds 10] [--connections 64] [--reps 3]

Needs wrk, nginx and openssl (Debian: `apt-get install wrk nginx-light openssl`) and taskset.

What it does:

1. Builds `specs/performance.yaml` with `gwgen build --release`.
2. Makes an RSA key with openssl, serves its JWKS over HTTP, and signs an RS256 token for the
   validated route (Python's standard library and the openssl CLI; no JOSE library).
3. Starts the upstream: nginx answering a 90-byte JSON body (`bench/nginx/upstream.conf`).
4. Measures, with wrk on loopback (one thread):
   (a) the upstream directly, GET;
   (b) nginx as a reverse proxy with upstream keep-alive (`bench/nginx/proxy.conf`), GET;
   (c) the gateway's plain proxy route, GET /plain;
   (d) the gateway's route with a JWT check, a throttle and body validation, POST /orders with a
       ~900-byte JSON body;
   and, for reference, (e) nginx proxying the same POST (no checks).
5. Pinning: the servers under test (the upstream, and the proxy in front of it) run on core 0
   (`taskset -c 0`); wrk runs on core 1. The proxy and the upstream share core 0, so a
   throughput ratio between proxies is a ratio of CPU cost per request.
6. Runs the targets interleaved, `--reps` times, and keeps each target's median. CPU time per
   request is the proxy's user+system time (`/proc/PID/stat`, all its processes) over the
   requests wrk counted; for (a), the upstream's.

Prints a Markdown table with the ratios to (a) and to (b).
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port, wrk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(work):
    """An RSA key, its JWKS, and an RS256 token signed with the openssl CLI."""
    key = os.path.join(work, "key.pem")
    subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
    modulus = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True,
                             capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    jwks = {"keys": [{"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
                      "n": b64url(bytes.fromhex(modulus)), "e": "AQAB"}]}
    os.makedirs(os.path.join(work, "jwks"), exist_ok=True)
    with open(os.path.join(work, "jwks", "jwks.json"), "w") as f:
        json.dump(jwks, f)
    header = {"alg": "RS256", "typ": "JWT", "kid": "bench"}
    claims = {"iss": "https://issuer.bench", "aud": "orders", "sub": "bench-client",
              "scope": "orders:write orders:read", "exp": int(time.time()) + 3 * 3600}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input.encode(),
                         check=True, capture_output=True).stdout
    return f"{signing_input}.{b64url(sig)}"


def order_body():
    items = [{"sku": f"ABC-{1000 + n}", "qty": 1 + n % 5, "price": 9.99 + n, "note": "gift wrap, please"}
             for n in range(8)]
    return json.dumps({
        "customer": {"id": "7f1c8c52-4b0d-4f7e-9d51-1c4f0b8d2a10", "email": "ada@example.com", "name": "Ada Lovelace"},
        "items": items,
        "shipping": {"street": "12 Analytical Row", "city": "London", "postcode": "NW1 2AB", "country": "GB"},
        "placed_at": "2026-11-25T10:00:00Z",
    })


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total


def family(pid):
    """The process and its children (nginx's master and worker)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [int(p) for p in out]


def nginx(conf_template, work, name, **subst):
    with open(os.path.join(ROOT, "bench", "nginx", conf_template)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace(f"@{k}@", str(v))
    text = text.replace("@DIR@", work)
    conf = os.path.join(work, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(text)
    return subprocess.Popen(["taskset", "-c", "0", "nginx", "-p", work, "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="abcde", help="the targets to run, by letter (a and b are always run)")
    args = ap.parse_args()
    for tool in ["wrk", "nginx", "openssl", "taskset"]:
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is needed (apt-get install wrk nginx-light openssl util-linux)")
    os.environ["PATH"] += ":/usr/sbin"
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gwgen"], cwd=ROOT, check=True)
    gwgen = os.path.join(ROOT, "target", "release", "gwgen")
    spec = os.path.join(ROOT, "specs", "performance.yaml")
    binary = subprocess.run([gwgen, "build", "--release", spec], check=True, stdout=subprocess.PIPE,
                            text=True).stdout.strip().splitlines()[-1]
    work = tempfile.mkdtemp(prefix="gwgen-proxy-bench-")
    token = make_token(work)
    body = order_body()
    post = os.path.join(work, "post.lua")
    with open(post, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
        f.write(f"wrk.body = {json.dumps(body)}\n")

    up_port, proxy_port, gw_port, jwks_port = free_port(), free_port(), free_port(), free_port()
    procs = []
    try:
        jwks = subprocess.Popen([sys.executable, "-m", "http.server", str(jwks_port), "--bind", "127.0.0.1",
                                 "--directory", os.path.join(work, "jwks")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(jwks)
        upstream = nginx("upstream.conf", work, "upstream", PORT=up_port)
        procs.append(upstream)
        proxy = nginx("proxy.conf", work, "proxy", PORT=proxy_port, UPSTREAM=up_port)
        procs.append(proxy)
        log = open(os.path.join(work, "gateway.log"), "w")
        gateway = subprocess.Popen(
            ["taskset", "-c", "0", binary, "--listen", f"127.0.0.1:{gw_port}"],
            env={**os.environ, "UPSTREAM_PORT": str(up_port),
                 "JWKS_URL": f"http://127.0.0.1:{jwks_port}/jwks.json"},
            stdout=log, stderr=subprocess.STDOUT)
        procs.append(gateway)
        for port, p in [(jwks_port, jwks), (up_port, upstream), (proxy_port, proxy), (gw_port, gateway)]:
            wait_port(port, p)
        targets = [
            ("(a) upstream directly", up_port, "/plain", None, lambda: family(upstream.pid)),
            ("(b) nginx reverse proxy", proxy_port, "/plain", None, lambda: family(proxy.pid)),
            ("(c) gateway, plain proxy route", gw_port, "/plain", None, lambda: [gateway.pid]),
            ("(d) gateway, JWT + throttle + validation", gw_port, "/orders", post, lambda: [gateway.pid]),
            ("(e) nginx reverse proxy, same POST", proxy_port, "/orders", post, lambda: family(proxy.pid)),
        ]
        targets = [t for t in targets if t[0][1] in args.only + "ab"]
        for name, port, path, script, _ in targets:  # warm-up: pools, JWKS, caches
            wrk(port, path, 2, args.connections, script)
        results = {name: [] for name, *_ in targets}
        for _ in range(args.reps):
            for name, port, path, script, pids in targets:
                ps = pids()
                before = cpu_ticks(ps)
                requests, rps, p50, p99 = wrk(port, path, args.seconds, args.connections, script)
                cpu_us = (cpu_ticks(ps) - before) / TICK * 1e6 / max(requests, 1)
                results[name].append((rps, p50, p99, cpu_us))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    rows = {}
    for name, reps in results.items():
        reps.sort(key=lambda r: r[0])
        rows[name] = reps[len(reps) // 2]
    a = rows["(a) upstream directly"][0]
    b = rows["(b) nginx reverse proxy"][0]
    print(f"wrk -t1 -c{args.connections}, {args.seconds} s x {args.reps} interleaved reps (medians); "
          f"servers on core 0, wrk on core 1; body of (d)/(e): {len(body)} bytes")
    print()
    print("| target | requests/s | p50 | p99 | CPU µs/request | vs. (a) upstream | vs. (b) nginx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (rps, p50, p99, cpu) in rows.items():
        print(f"| {name} | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms | {cpu:.1f} | {rps / a:.2f} | {rps / b:.2f} |")
    spread = {name: (min(r[0] for r in reps), max(r[0] for r in reps)) for name, reps in results.items()}
    print()
    print("req/s range over the reps: " + "; ".join(f"{n.split(')')[0]}) {lo:,.0f}–{hi:,.0f}"
                                                     for n, (lo, hi) in spread.items()))


if __name__ == "__main__":
    main()
