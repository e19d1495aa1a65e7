#!/usr/bin/env python3
"""Benchmark: WebSocket round trips through the gateway against a direct WebSocket echo server,
and the memory an idle connection costs, in one run.

Usage: python3 bench/websocket.py [--seconds 5] [--reps 3] [--connections 16] [--idle 10000]

Needs taskset; builds `bench/websocket.yaml` with `gwgen build --release` and the load tool of
`bench/websocket` (tokio-tungstenite, one thread).

What it does:

1. Direct: `ws-load echo` (tokio-tungstenite, one thread) on core 0 echoes every message.
2. Gateway: the gateway on core 0 routes each message to `$default`, a mock whose answer goes
   back (`respond: true`): the whole message path (route selection on the JSON message, the
   route, the event, the reply) without a backend.
3. `ws-load rtt` on core 1: CONNECTIONS connections, each sending a 60-byte JSON message and
   waiting for the answer, for SECONDS. Targets run interleaved, `--reps` times; medians kept.
4. Memory: the server's resident set (VmRSS) before and after `--idle` idle connections are
   opened (and held), divided by their number.

Prints two Markdown tables: round trips per second (and p50/p99) with the ratio gateway/direct,
and bytes per idle connection.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, stop, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--idle", type=int, default=10000)
    args = ap.parse_args()
    # 10,000 connections on each side of loopback: each process needs as many descriptors.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gwgen"], cwd=ROOT, check=True)
    gwgen = os.path.join(ROOT, "target", "release", "gwgen")
    target = os.path.join(ROOT, "target", "bench-websocket")
    subprocess.run(["cargo", "build", "--release", "-q", "--manifest-path", "bench/websocket/Cargo.toml",
                    "--target-dir", target], cwd=ROOT, check=True)
    load = os.path.join(target, "release", "gwgen-bench-websocket")
    out = subprocess.run([gwgen, "build", "--release", "bench/websocket.yaml"], cwd=ROOT, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    gateway = out.strip().splitlines()[-1]
    work = tempfile.mkdtemp(prefix="gwgen-ws-bench-")
    procs = []
    try:
        servers = {}
        gp, ep = free_port(), free_port()
        g = subprocess.Popen(["taskset", "-c", "0", gateway, "--listen", f"127.0.0.1:{gp}"],
                             stdout=open(os.path.join(work, "gw.log"), "w"), stderr=subprocess.STDOUT,
                             env={**os.environ, "RUST_LOG": "warn"})
        procs.append(g)
        e = subprocess.Popen(["taskset", "-c", "0", load, "echo", str(ep)])
        procs.append(e)
        wait_port(gp, g)
        wait_port(ep, e)
        servers["gateway"] = (g, f"ws://127.0.0.1:{gp}/ws")
        servers["direct"] = (e, f"ws://127.0.0.1:{ep}/")
        runs = {name: [] for name in servers}
        for _ in range(args.reps):
            for name, (_, url) in servers.items():
                r = subprocess.run(["taskset", "-c", "1", load, "rtt", url, str(args.connections),
                                    str(args.seconds)], check=True, stdout=subprocess.PIPE, text=True)
                runs[name].append(json.loads(r.stdout))
        med = {name: {k: statistics.median(r[k] for r in rs) for k in ("rate", "p50_us", "p99_us")}
               for name, rs in runs.items()}
        print(f"Round trips, {args.connections} connections, {args.seconds} s, median of {args.reps} "
              "(server on core 0, load on core 1):\n")
        print("| target | round trips/s | p50 µs | p99 µs |")
        print("|---|---:|---:|---:|")
        for name in ("direct", "gateway"):
            m = med[name]
            print(f"| {name} | {m['rate']:,.0f} | {m['p50_us']:.0f} | {m['p99_us']:.0f} |")
        print(f"\ngateway / direct: {med['gateway']['rate'] / med['direct']['rate']:.2f}\n")
        print(f"Memory per idle connection, {args.idle:,} connections:\n")
        print("| target | RSS before | RSS with the connections | bytes per connection |")
        print("|---|---:|---:|---:|")
        for name in ("direct", "gateway"):
            proc, url = servers[name]
            before = rss(proc.pid)
            ready = os.path.join(work, f"{name}.ready")
            holder = subprocess.Popen(["taskset", "-c", "1", load, "idle", url, str(args.idle), "20", ready],
                                      stdout=subprocess.PIPE, text=True)
            deadline = time.time() + 120
            while not os.path.exists(ready) and time.time() < deadline:
                time.sleep(0.2)
            time.sleep(1)
            opened = int(open(ready).read() or 0)
            during = rss(proc.pid)
            holder.kill()
            holder.wait()
            if opened < args.idle:
                sys.exit(f"{name}: only {opened} of {args.idle} connections opened")
            print(f"| {name} | {before / 2**20:.1f} MiB | {during / 2**20:.1f} MiB | "
                  f"{(during - before) / opened:,.0f} |")
            time.sleep(2)
    finally:
        stop(procs)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
