#!/usr/bin/env python3
"""Benchmark: a function run locally behind the gateway against the same function invoked directly
through its runtime client, in one run.

Usage: python3 bench/lambda.py [--seconds 5] [--reps 3]

Needs wrk and taskset (Debian: `apt-get install wrk`), and Python 3 with venv (awslambdaric is
installed into target/bench-lambda-venv).

What it does:

1. Builds `bench/lambda.yaml` with `gwgen build --release`, and the functions: the Rust one of
   `tests/lambda-rust` (AWS's `lambda_runtime`) and the Python one of `specs/lambda/handler.py`
   (AWS's `awslambdaric`).
2. Direct: `runtime-api-loop` (tests/lambda-rust) hosts the smallest Runtime API there can be,
   starts the function and hands it a payload 2.0 event over and over, one invocation at a time,
   as one Lambda process runs them: invocations per second.
3. Through the gateway: the same function, one warm process (`concurrency: 1`), behind a route;
   wrk with one connection (one invocation at a time, as above) sends GET /LANG/hello/ferris:
   requests per second.
4. Places the gateway (and the function process it starts), or the direct loop and its function,
   on core 0, and wrk on core 1.
5. Runs the targets interleaved, `--reps` times, and keeps each one's median.

Prints a Markdown table: requests per second, the time one request takes (1/rate), their ratio
(gateway / direct), and the gateway's added latency (the difference of the times).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port, wrk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A payload 2.0 event of the size the gateway builds for GET /LANG/hello/ferris.
EVENT = {
    "version": "2.0", "routeKey": "GET /rust/hello/{name}", "rawPath": "/rust/hello/ferris",
    "rawQueryString": "", "isBase64Encoded": False,
    "headers": {"host": "127.0.0.1:8080", "user-agent": "wrk", "x-request-id": "0" * 36},
    "pathParameters": {"name": "ferris"},
    "requestContext": {
        "accountId": "gwgen", "apiId": "gateway", "domainName": "127.0.0.1:8080", "domainPrefix": "127",
        "http": {"method": "GET", "path": "/rust/hello/ferris", "protocol": "HTTP/1.1",
                 "sourceIp": "127.0.0.1", "userAgent": "wrk"},
        "requestId": "0" * 36, "routeKey": "GET /rust/hello/{name}", "stage": "default",
        "time": "28/Nov/2026:05:00:00 +0000", "timeEpoch": 1795842000000,
    },
}


def python_with_ric():
    venv = os.path.join(ROOT, "target", "bench-lambda-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py) or subprocess.run([py, "-c", "import awslambdaric"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "awslambdaric==4.2.2"], check=True)
    return py


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    target = os.path.join(ROOT, "target")
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gwgen"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "--locked", "--manifest-path",
                    os.path.join(ROOT, "tests", "lambda-rust", "Cargo.toml")], cwd=ROOT, check=True, env=env)
    rust = os.path.join(target, "release", "gwgen-test-rust-function")
    loop = os.path.join(target, "release", "runtime-api-loop")
    python = python_with_ric()
    gwgen = os.path.join(target, "release", "gwgen")
    binary = subprocess.run([gwgen, "build", "--release", os.path.join(ROOT, "bench", "lambda.yaml")], check=True,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT).stdout.strip().splitlines()[-1]
    work = tempfile.mkdtemp(prefix="gwgen-lambda-bench-")
    event_file = os.path.join(work, "event.json")
    with open(event_file, "w") as f:
        json.dump(EVENT, f)

    port, admin = free_port(), free_port()
    log = open(os.path.join(work, "gateway.log"), "w")
    gw = subprocess.Popen(["taskset", "-c", "0", binary, "--listen", f"127.0.0.1:{port}",
                           "--admin-listen", f"127.0.0.1:{admin}"], cwd=ROOT, stdout=log, stderr=log,
                          env=dict(os.environ, RUST_FUNCTION=rust, PYTHON=python, GWGEN_RUNTIME="current_thread"))
    try:
        wait_port(port, gw)
        functions = {
            "rust": [rust],
            "python": [python, "-m", "awslambdaric", "handler.handle"],
        }
        results = {(lang, how): [] for lang in functions for how in ("direct", "gateway")}
        mock = []
        for lang in functions:
            # Warm: the first invocation starts the process.
            wrk(port, f"/{lang}/hello/ferris", 1, 1)
        for _ in range(args.reps):
            for lang, cmd in functions.items():
                out = subprocess.run(["taskset", "-c", "0", loop, str(args.seconds), event_file, *cmd], check=True,
                                     stdout=subprocess.PIPE, text=True,
                                     cwd=os.path.join(ROOT, "specs", "lambda")).stdout
                d = json.loads(out.strip().splitlines()[-1])
                results[(lang, "direct")].append(d["invocations"] / d["seconds"])
                _, rps, _, _ = wrk(port, f"/{lang}/hello/ferris", args.seconds, 1)
                results[(lang, "gateway")].append(rps)
            mock.append(wrk(port, "/mock", args.seconds, 1)[1])
    finally:
        gw.terminate()
        gw.wait(timeout=30)
        # The access logs of the runs reach gigabytes.
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.reps} interleaved runs of {args.seconds} s, medians; one invocation at a time; "
          f"the gateway or the direct loop (and the function) on core 0, wrk on core 1.\n")
    print("| function | direct (runtime-api-loop) req/s | through the gateway req/s | gateway / direct "
          "| direct µs/request | gateway µs/request | added by the gateway µs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for lang in functions:
        d = statistics.median(results[(lang, "direct")])
        g = statistics.median(results[(lang, "gateway")])
        print(f"| {lang} | {d:,.0f} | {g:,.0f} | {g / d:.2f} | {1e6 / d:.0f} | {1e6 / g:.0f} | {1e6 / g - 1e6 / d:.0f} |")
    m = statistics.median(mock)
    print(f"\nFor reference, the gateway's mock route at one connection: {m:,.0f} req/s, {1e6 / m:.0f} µs/request "
          "(wrk's round trip and the gateway's own work, with no integration).")


if __name__ == "__main__":
    main()
