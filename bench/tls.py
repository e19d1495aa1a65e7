#!/usr/bin/env python3
"""Benchmark: TLS on the listener, the gateway against nginx with the same certificate, in one run.

Usage: python3 bench/tls.py [--proxy-cores P] [--seconds 5] [--connections 64] [--streams 10]
                            [--reps 3] [--key ec|rsa]

Needs wrk, h2load, nginx, openssl and taskset (Debian: `apt-get install wrk nghttp2-client
nginx-light openssl`).

Both proxies take HTTPS with one certificate (ECDSA P-256 by default, `--key rsa` for RSA 2048)
and proxy a GET to the same upstream (nginx answering a 90-byte JSON body):

- (k) kept-alive HTTPS/1.1 connections (wrk, `--connections`);
- (h) a new TLS connection for every request (wrk with `Connection: close`): full handshakes
  per second, as clients without keep-alive or session resumption cost;
- (2) HTTP/2 over TLS (h2load, `--connections` connections of `--streams` streams).

nginx (`bench/nginx/tls.conf`) and the gateway (`bench/tls.yaml`) run on P cores, the upstream
and the load generators on the others. Targets run interleaved, `--reps` times; medians kept.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, stop, wait_port, wrk  # noqa: E402
from http2 import build, h2load, interleaved, setup  # noqa: E402
from proxy_vs_nginx import ROOT, family, nginx  # noqa: E402


def certificate(work, kind):
    """A self-signed certificate for 127.0.0.1 (the clients do not verify it)."""
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec" else ["-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:FALSE"], check=True, capture_output=True)
    return cert, key


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--proxy-cores", type=int, default=1)
    ap.add_argument("--key", choices=["ec", "rsa"], default="ec")
    args = ap.parse_args()
    n, p = os.cpu_count(), args.proxy_cores
    proxy_cores, up_cores, load_cores, u, w = setup(["wrk", "h2load", "nginx", "openssl", "taskset"], n, p)
    binary = build(os.path.join(ROOT, "bench", "tls.yaml"))
    work = tempfile.mkdtemp(prefix="gwgen-tls-bench-")
    cert, key = certificate(work, args.key)
    up_port, nginx_port, gw_port = free_port(), free_port(), free_port()
    procs = []
    try:
        upstream = nginx("upstream.conf", work, "upstream", up_cores, PORT=up_port, WORKERS=u)
        procs.append(upstream)
        proxy = nginx("tls.conf", work, "tls", proxy_cores, PORT=nginx_port, UPSTREAM=up_port, WORKERS=p,
                      CERT=cert, KEY=key)
        procs.append(proxy)
        env = {**os.environ, "UPSTREAM_PORT": str(up_port), "BENCH_CERT": cert, "BENCH_KEY": key}
        log = open(os.path.join(work, "gateway.log"), "w")
        gw = subprocess.Popen(["taskset", "-c", proxy_cores, binary, "--listen", f"127.0.0.1:{gw_port}"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(gw)
        for port, proc in [(up_port, upstream), (nginx_port, proxy), (gw_port, gw)]:
            wait_port(port, proc)
        close = os.path.join(work, "close.lua")
        with open(close, "w") as f:
            f.write('wrk.headers["Connection"] = "close"\n')

        def https(port, script=None):
            return lambda secs: wrk(port, "/plain", secs, args.connections, script, cores=load_cores,
                                    threads=w, scheme="https")[:2]

        def h2(port):
            return lambda secs: h2load(port, "/plain", secs, args.connections, args.streams, load_cores,
                                       scheme="https")
        nginx_pids, gw_pids = (lambda: family(proxy.pid)), (lambda: [gw.pid])
        targets = [
            ("(k) nginx, kept-alive HTTPS/1.1", https(nginx_port), nginx_pids),
            ("(k) gateway, kept-alive HTTPS/1.1", https(gw_port), gw_pids),
            ("(h) nginx, a handshake a request", https(nginx_port, close), nginx_pids),
            ("(h) gateway, a handshake a request", https(gw_port, close), gw_pids),
            ("(2) nginx, HTTP/2 over TLS", h2(nginx_port), nginx_pids),
            ("(2) gateway, HTTP/2 over TLS", h2(gw_port), gw_pids),
        ]
        rows = interleaved(targets, args.reps, args.seconds)
    finally:
        stop(procs)
        # The access logs of the runs reach gigabytes.
        shutil.rmtree(work, ignore_errors=True)
    print(f"P = {p} proxy cores of {n}: proxies on cores {proxy_cores}, upstream nginx ({u} workers) on "
          f"{up_cores}, load on {load_cores} (wrk -t{w} -c{args.connections}; h2load -t1 -c{args.connections} "
          f"-m{args.streams}); {args.key.upper()} certificate; {args.seconds} s x {args.reps} interleaved reps "
          f"(medians)")
    print()
    print("| target | requests/s | CPU µs/request | gateway / nginx |")
    print("|---|---:|---:|---:|")
    for name, (rps, cpu) in rows.items():
        peer = rows.get(name.replace("gateway", "nginx"))
        ratio = f"{rps / peer[0]:.2f}" if "gateway" in name and peer else ""
        print(f"| {name} | {rps:,.0f} | {cpu:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
