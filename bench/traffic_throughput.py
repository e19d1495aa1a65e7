#!/usr/bin/env python3
"""Benchmark: what throttling and caching cost and save, measured in one run.

Usage: python3 bench/traffic_throughput.py [--seconds 10] [--connections 32]

Builds bench/traffic-throughput.yaml twice with `gwgen build --release`: as written (state in
memory) and with `state: { backend: redis }` added. Starts an upstream (Python's threading
`http.server` answering a 1 KB JSON body, HTTP/1.1 keep-alive) and a `redis-server` on loopback.
Each server runs pinned to core 0 with `taskset`, wrk (Debian's `wrk` package) to core 1;
Redis shares core 1 with wrk. Prints requests per second, p50 and p99 for:

- a mock route unthrottled, throttled (one bucket) and throttled per client address, on memory
  and on Redis, with the ratio to the unthrottled route;
- the upstream directly, through the gateway uncached, and through the gateway cached, with the
  ratio to the upstream directly.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port, wrk as wrk_run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

UPSTREAM = r'''
import http.server, json, socket, sys
BODY = json.dumps({"id": 1, "items": [{"sku": "ABC-%d" % n, "qty": n} for n in range(40)]}).encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    def get_request(self):
        conn, addr = self.socket.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls
        return conn, addr
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def wrk(port, path, seconds, connections):
    return wrk_run(port, path, seconds, connections)[1:]


def build(gwgen, spec):
    return subprocess.run([gwgen, "build", "--release", spec], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip().splitlines()[-1]


def serve(binary, env):
    port = free_port()
    p = subprocess.Popen(["taskset", "-c", "0", binary, "--listen", f"127.0.0.1:{port}"],
                         env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, port


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    for tool in ["wrk", "redis-server", "taskset"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (apt-get install wrk redis-server util-linux)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gwgen"], cwd=ROOT, check=True)
    gwgen = os.path.join(ROOT, "target", "release", "gwgen")
    spec = os.path.join(ROOT, "bench", "traffic-throughput.yaml")
    work = tempfile.mkdtemp(prefix="gwgen-traffic-bench-")
    redis_spec = os.path.join(work, "traffic-throughput-redis.yaml")
    with open(spec) as f:
        text = f.read()
    text = text.replace("title: Traffic throughput,", "title: Traffic throughput redis,")
    text = text.replace("x-gateway:\n", 'x-gateway:\n  state: { backend: redis, url: "${env.REDIS_URL}" }\n', 1)
    with open(redis_spec, "w") as f:
        f.write(text)
    memory_bin = build(gwgen, spec)
    redis_bin = build(gwgen, redis_spec)

    up_port, redis_port = free_port(), free_port()
    upstream = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", UPSTREAM, str(up_port)],
                                stderr=subprocess.DEVNULL)
    redis = subprocess.Popen(["taskset", "-c", "1", "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    procs = [upstream, redis]
    env = {"UPSTREAM_PORT": str(up_port), "REDIS_URL": f"redis://127.0.0.1:{redis_port}/"}
    rows = []
    try:
        wait_port(up_port)
        wait_port(redis_port)
        for backend, binary in [("memory", memory_bin), ("redis", redis_bin)]:
            gw, port = serve(binary, env)
            procs.append(gw)
            wrk(port, "/plain", 2, args.connections)  # warm-up
            for name, path in [("unthrottled", "/plain"), ("throttled", "/throttled"),
                               ("throttled per client", "/throttled-per-ip")]:
                if backend == "redis" and name == "unthrottled":
                    continue
                rows.append(("throttle", f"{name} ({backend})" if name != "unthrottled" else name,
                             wrk(port, path, args.seconds, args.connections)))
            if backend == "memory":
                rows.append(("cache", "upstream directly", wrk(up_port, "/item", args.seconds, args.connections)))
                rows.append(("cache", "through the gateway, not cached",
                             wrk(port, "/upstream", args.seconds, args.connections)))
            rows.append(("cache", f"through the gateway, cached ({backend})",
                         wrk(port, "/cached", args.seconds, args.connections)))
            stop(gw)
            procs.remove(gw)
    finally:
        for p in procs:
            stop(p)
        # The access logs of the runs reach gigabytes.
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.connections} connections, {args.seconds} s per row; servers on core 0, wrk (and Redis) on core 1")
    for group, base_name, label in [("throttle", "unthrottled", "vs. unthrottled"),
                                    ("cache", "upstream directly", "vs. upstream directly")]:
        base = next(r for g, n, r in rows if g == group and n == base_name)[0]
        print()
        print(f"| {'route' if group == 'throttle' else 'path'} | requests/s | p50 | p99 | {label} |")
        print("|---|---|---|---|---|")
        for g, name, (rps, p50, p99) in rows:
            if g == group:
                print(f"| {name} | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms | {rps / base:.2f} |")


if __name__ == "__main__":
    main()
