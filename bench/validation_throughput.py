#!/usr/bin/env python3
"""Benchmark: a gateway's throughput on a route that validates a ~1 KB JSON body against the same
route with validation turned off (`validate: {requests: false}`), measured in one run.

Usage: python3 bench/validation_throughput.py [--seconds 10] [--connections 32]

Builds bench/validation-throughput.yaml with `gwgen build --release` (both routes are mocks that
answer 204, so the gateway's own cost is what is measured), starts it pinned to core 0 with
`taskset`, and drives each route with wrk pinned to core 1 (wrk from Debian's `wrk` package),
POSTing the same valid body. Prints requests per second, p50 and p99 latency, and the ratio.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port, wrk as wrk_run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def body():
    items = [{"sku": f"ABC-{1000 + n}", "qty": 1 + n % 5, "price": 9.99 + n, "note": "gift wrap, please"} for n in range(8)]
    return json.dumps({
        "customer": {"id": "7f1c8c52-4b0d-4f7e-9d51-1c4f0b8d2a10", "email": "ada@example.com", "name": "Ada Lovelace"},
        "items": items,
        "shipping": {"street": "12 Analytical Row", "city": "London", "postcode": "NW1 2AB", "country": "GB"},
        "placed_at": "2026-11-25T10:00:00Z",
    })


def wrk(port, path, script, seconds, connections):
    return wrk_run(port, path, seconds, connections, script)[1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gwgen"], cwd=ROOT, check=True)
    gwgen = os.path.join(ROOT, "target", "release", "gwgen")
    spec = os.path.join(ROOT, "bench", "validation-throughput.yaml")
    binary = subprocess.run([gwgen, "build", "--release", spec], check=True, stdout=subprocess.PIPE,
                            text=True).stdout.strip().splitlines()[-1]
    payload = body()
    work = tempfile.mkdtemp(prefix="gwgen-validation-bench-")
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write(f"wrk.body = {json.dumps(payload)}\n")
    port = free_port()
    gw = subprocess.Popen(["taskset", "-c", "0", binary, "--listen", f"127.0.0.1:{port}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, gw)
        wrk(port, "/plain", script, 2, args.connections)  # warm-up
        rows = {}
        for name, path in [("without validation", "/plain"), ("with validation", "/validated")]:
            rows[name] = wrk(port, path, script, args.seconds, args.connections)
    finally:
        gw.terminate()
        gw.wait(timeout=10)
        # The access logs of the runs reach gigabytes.
        shutil.rmtree(work, ignore_errors=True)
    base = rows["without validation"][0]
    print(f"body: {len(payload)} bytes, {args.connections} connections, {args.seconds} s per route, gateway on core 0, wrk on core 1")
    print("| route | requests/s | p50 | p99 | throughput vs. no validation |")
    print("|---|---|---|---|---|")
    for name, (rps, p50, p99) in rows.items():
        print(f"| {name} | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms | {rps / base:.2f} |")


if __name__ == "__main__":
    main()
