#!/usr/bin/env python3
"""Benchmark: HTTP/2 through the gateway against nginx, and what `http2: true` costs HTTP/1.1
clients, in one run.

Usage: python3 bench/http2.py [--proxy-cores P] [--seconds 5] [--connections 64] [--streams 10]
                              [--reps 3]

Needs wrk, h2load, nginx and taskset (Debian: `apt-get install wrk nghttp2-client nginx-light`).

Targets, all to the same upstream (nginx answering a 90-byte JSON body, `bench/nginx/h2-upstream.conf`):

- HTTP/1.1 clients (wrk, `--connections` connections):
  (c) the gateway of `bench/http2.yaml` with `http2: false` (HTTP/1.1 only), plain proxy route;
  (m) the same with `http2: true`, over HTTP/1.1: what taking HTTP/2 as well costs HTTP/1.1
      clients.
- HTTP/2 clients with prior knowledge (h2load, `--connections` connections of `--streams`
  concurrent streams each):
  (q) the upstream directly over h2c;
  (n) nginx taking h2c and proxying over pooled HTTP/1.1 (`bench/nginx/h2.conf`);
  (o) the gateway of (m) taking h2c, HTTP/1.1 to the upstream;
  (p) the same gateway, the route whose upstream is reached over h2c (`protocol: http2`).

The proxies under test run on P cores, the upstream and the load generator on the others (on a
2-core machine with P = 1: the proxy on core 0, the rest on core 1). Targets run interleaved,
`--reps` times; medians are kept. CPU µs per request is the proxy's user+system time over the
requests answered.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, stop, wait_port, wrk  # noqa: E402
from proxy_vs_nginx import ROOT, TICK, cpu_ticks, family, layout, nginx  # noqa: E402


def h2load(port, path, seconds, connections, streams, cores, scheme="http"):
    """One h2load run (h2c, or h2 over TLS with `https`): (requests, requests/s). Exits when any
    answer was not a 2xx."""
    out = subprocess.run(["taskset", "-c", cores, "h2load", "-c", str(connections), "-m", str(streams),
                          "-D", str(seconds), "-t", "1", f"{scheme}://127.0.0.1:{port}{path}"],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                     out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    if not done or int(done.group(3)) or int(done.group(4)) or any(int(codes.group(i)) for i in (2, 3, 4)):
        sys.exit(f"{path} on {port}: not every answer was a 2xx:\n{out}")
    return int(codes.group(1)), rps


def setup(tools, n, p):
    """Checks the tools are there, builds gwgen, and places P proxy cores of `n`: the cores of the
    proxy, the upstream and the load generators, and the upstream's and load's core counts."""
    os.environ["PATH"] += ":/usr/sbin"
    for tool in tools:
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (apt-get install wrk nghttp2-client nginx-light openssl util-linux)")
    free = max(n - p, 1)
    u = max(1, min(4, free // 2))
    w = max(1, min(4, free - u))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gwgen"], cwd=ROOT, check=True)
    return layout(n, p, u, w)


def interleaved(targets, reps, seconds):
    """Runs `(name, run, pids)` targets after a 2 s warm-up each, `reps` times in turn, for
    `seconds`; the median (requests/s, the proxy's CPU µs per request) of each, by name."""
    for _, run, _ in targets:
        run(2)
    results = {name: [] for name, *_ in targets}
    for _ in range(reps):
        for name, run, pids in targets:
            ps = pids()
            before = cpu_ticks(ps)
            requests, rps = run(seconds)
            results[name].append((rps, (cpu_ticks(ps) - before) / TICK * 1e6 / max(requests, 1)))
    rows = {}
    for name, runs in results.items():
        runs.sort()
        rows[name] = runs[len(runs) // 2]
    return rows


def build(spec):
    gwgen = os.path.join(ROOT, "target", "release", "gwgen")
    return subprocess.run([gwgen, "build", "--release", spec], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--streams", type=int, default=10, help="concurrent streams per HTTP/2 connection")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--proxy-cores", type=int, default=1)
    args = ap.parse_args()
    n, p = os.cpu_count(), args.proxy_cores
    proxy_cores, up_cores, load_cores, u, w = setup(["wrk", "h2load", "nginx", "taskset"], n, p)
    work = tempfile.mkdtemp(prefix="gwgen-h2-bench-")
    spec = os.path.join(ROOT, "bench", "http2.yaml")
    with open(spec) as f:
        text = f.read()
    http1_spec = os.path.join(work, "http1.yaml")
    with open(http1_spec, "w") as f:
        f.write(text.replace("http2: true", "http2: false").replace("Http2 Bench", "Http1 Bench"))
    plain_bin, h2_bin = build(http1_spec), build(spec)
    up_port, h2up_port, nginx_port, plain_port, h2_port = (free_port() for _ in range(5))
    procs = []
    try:
        upstream = nginx("h2-upstream.conf", work, "h2-upstream", up_cores, PORT=up_port, H2PORT=h2up_port,
                         WORKERS=u)
        procs.append(upstream)
        proxy = nginx("h2.conf", work, "h2", proxy_cores, PORT=nginx_port, UPSTREAM=up_port, WORKERS=p)
        procs.append(proxy)
        env = {**os.environ, "UPSTREAM_PORT": str(up_port), "H2_UPSTREAM_PORT": str(h2up_port)}
        gws = []
        for binary, port in [(plain_bin, plain_port), (h2_bin, h2_port)]:
            log = open(os.path.join(work, f"gateway-{port}.log"), "w")
            gws.append(subprocess.Popen(["taskset", "-c", proxy_cores, binary, "--listen", f"127.0.0.1:{port}"],
                                        env=env, stdout=log, stderr=subprocess.STDOUT))
        procs += gws
        for port, proc in [(up_port, upstream), (h2up_port, upstream), (nginx_port, proxy),
                           (plain_port, gws[0]), (h2_port, gws[1])]:
            wait_port(port, proc)
        h1 = lambda port, path: lambda secs: wrk(port, path, secs, args.connections, None,  # noqa: E731
                                                  cores=load_cores, threads=w)[:2]
        h2 = lambda port, path: lambda secs: h2load(port, path, secs, args.connections,  # noqa: E731
                                                     args.streams, load_cores)
        targets = [
            ("(c) gateway, HTTP/1.1 only, HTTP/1.1 client", h1(plain_port, "/plain"), lambda: [gws[0].pid]),
            ("(m) gateway with http2: true, HTTP/1.1 client", h1(h2_port, "/plain"), lambda: [gws[1].pid]),
            ("(q) upstream directly, h2c", h2(h2up_port, "/plain"), lambda: family(upstream.pid)),
            ("(n) nginx, h2c client, HTTP/1.1 upstream", h2(nginx_port, "/plain"), lambda: family(proxy.pid)),
            ("(o) gateway, h2c client, HTTP/1.1 upstream", h2(h2_port, "/plain"), lambda: [gws[1].pid]),
            ("(p) gateway, h2c client, h2c upstream", h2(h2_port, "/h2"), lambda: [gws[1].pid]),
        ]
        rows = interleaved(targets, args.reps, args.seconds)
    finally:
        stop(procs)
        # The access logs of the runs reach gigabytes.
        shutil.rmtree(work, ignore_errors=True)
    print(f"P = {p} proxy cores of {n}: proxies on cores {proxy_cores}, upstream nginx ({u} workers) on "
          f"{up_cores}, load on {load_cores} (wrk -t{w} -c{args.connections}; h2load -t1 -c{args.connections} "
          f"-m{args.streams}); {args.seconds} s x {args.reps} interleaved reps (medians)")
    print()
    print("| target | requests/s | CPU µs/request |")
    print("|---|---:|---:|")
    for name, (rps, cpu) in rows.items():
        print(f"| {name} | {rps:,.0f} | {cpu:.1f} |")
    r = {k.split(")")[0] + ")": v for k, v in rows.items()}
    print()
    print(f"(m)/(c) {r['(m)'][0] / r['(c)'][0]:.2f} (HTTP/1.1 clients, with http2: true against without); "
          f"(o)/(n) {r['(o)'][0] / r['(n)'][0]:.2f} (h2c clients, against nginx); "
          f"(p)/(o) {r['(p)'][0] / r['(o)'][0]:.2f} (h2c upstream against HTTP/1.1 upstream)")


if __name__ == "__main__":
    main()
