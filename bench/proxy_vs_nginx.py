#!/usr/bin/env python3
"""Benchmark: the gateway against nginx and against the upstream directly, in one run, on P cores.

Usage: python3 bench/proxy_vs_nginx.py [--proxy-cores P] [--seconds 10] [--connections 64] [--reps 3]
                                       [--modes multi_thread,per_core] [--latency]

Needs wrk, nginx and openssl (Debian: `apt-get install wrk nginx-light openssl`) and taskset;
`--latency` also needs oha (`cargo install oha`).

What it does:

1. Builds `specs/performance.yaml` with `gwgen build --release`.
2. Makes an RSA key with openssl, serves its JWKS over HTTP, and signs an RS256 token for the
   JWT route (Python's standard library and the openssl CLI; no JOSE library).
3. Starts the upstream: nginx answering a 90-byte JSON body (`bench/nginx/upstream.conf`).
4. Measures, with wrk on loopback:
   (a) the upstream directly, GET;
   (b) nginx as a reverse proxy with upstream keep-alive (`bench/nginx/proxy.conf`), GET;
   (c) the gateway's plain proxy route, GET /plain;
   (f) the gateway's route with three validated path parameters and two validated query
       parameters, GET;
   (d) the gateway's route with a JWT check, a throttle and body validation, POST /orders with a
       ~900-byte JSON body;
   (e) nginx proxying the same POST (no checks);
   (g) nginx proxying the URL of (f) (no checks): what its longer URL costs a proxy that checks
       nothing;
   (h) the gateway's plain route with request and response header transforms (templates);
   (i) the gateway proxying the POST of (d) unchecked, and (j) the same with its JSON body mapped
       (two members set from templates, one removed): what transforms cost (`--only chij`);
   (k) the gateway's plain route over three targets (round robin; the same upstream three times),
   and (l) nginx with an `upstream` block of the same three (`--only ckl`).
   With more than one proxy core, (c), (f) and (d) are run for each runtime mode of `--modes`
   (`GWGEN_RUNTIME`): the work-stealing runtime and a SO_REUSEPORT listener a core.
5. Places: the proxy under test (nginx with P workers, or the gateway) on P cores; the upstream
   nginx and wrk on the cores after them, disjoint where the machine has enough
   (`--upstream-cores`, `--wrk-cores`; wrk runs a thread a core). On a 2-core machine, P = 1
   puts the proxy alone on core 0 and the upstream and wrk on core 1; P = 2 puts everything on
   both cores, nginx and the gateway alike.
6. Runs the targets interleaved, `--reps` times, and keeps each target's median (and, for the
   goals' ratios, the median of each round's ratio of the two targets). CPU time per
   request is the proxy's user+system time (`/proc/PID/stat`, all its processes and threads)
   over the requests wrk counted; for (a), the upstream's.
7. With `--latency`: p50 and p99 of (b) and (c) at half of the lower of their peak rates, with
   oha sending at that fixed rate (`-q`, latency measured from when each request was due, so a
   stall counts in full), `--reps` interleaved runs each, the median p99 kept (a stall of 10 to
   25 ms now and then, seen with nginx and the gateway alike on this machine, moves one run's p99
   a lot).

Prints a Markdown table with the ratios to (a) and to (b), and the ratios the goals name.
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
from benchlib import free_port, stop, wait_port, wrk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The URL of (f): three path parameters and two query parameters, all validated.
CHECKED = "/stores/42/items/7f1c8c52-4b0d-4f7e-9d51-1c4f0b8d2a10/full?limit=10&sort=asc"
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


def nginx(conf_template, work, name, cores, **subst):
    with open(os.path.join(ROOT, "bench", "nginx", conf_template)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace(f"@{k}@", str(v))
    text = text.replace("@DIR@", work)
    conf = os.path.join(work, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(text)
    return subprocess.Popen(["taskset", "-c", cores, "nginx", "-p", work, "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def layout(n, p, u, w):
    """The cores of the proxy, the upstream and wrk, as taskset lists."""
    cores = list(range(n))
    if p + u + w <= n:
        proxy, up, load = cores[:p], cores[p:p + u], cores[p + u:p + u + w]
    elif p < n:
        proxy, up = cores[:p], cores[p:]
        load = up
    else:
        proxy = up = load = cores
    text = lambda cs: ",".join(map(str, cs))  # noqa: E731
    return text(proxy), text(up), text(load), len(up), len(load)


def oha_latency(port, path, seconds, connections, rate, cores):
    """p50 and p99 (ms) at a fixed request rate, measured from when each request was due."""
    out = subprocess.run(["taskset", "-c", cores, "oha", "--no-tui", "--output-format", "json",
                          "-z", f"{seconds}s", "-c", str(connections), "-q", str(int(rate)),
                          "--latency-correction", f"http://127.0.0.1:{port}{path}"],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    report = json.loads(out)
    pct = report["latencyPercentiles"]
    codes = report.get("statusCodeDistribution", {})
    if any(not k.startswith("2") for k in codes):
        sys.exit(f"{path} on {port}: not every answer was a 2xx: {codes}")
    return pct["p50"] * 1000, pct["p99"] * 1000, report["summary"]["requestsPerSec"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--proxy-cores", type=int, default=1, help="P: cores of the proxy under test")
    ap.add_argument("--upstream-cores", type=int, default=0, help="cores of the upstream (0: as many as fit)")
    ap.add_argument("--wrk-cores", type=int, default=0, help="cores (and threads) of wrk (0: as many as fit)")
    ap.add_argument("--modes", default="multi_thread,per_core",
                    help="the gateway's runtime modes to compare when P > 1 (GWGEN_RUNTIME)")
    ap.add_argument("--only", default="abcdefg", help="the targets to run, by letter (a and b are always run)")
    ap.add_argument("--latency", action="store_true", help="p99 at half of the peak rate, with oha")
    args = ap.parse_args()
    for tool in ["wrk", "nginx", "openssl", "taskset"] + (["oha"] if args.latency else []):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is needed (apt-get install wrk nginx-light openssl util-linux; cargo install oha)")
    os.environ["PATH"] += ":/usr/sbin"
    n = os.cpu_count()
    p = args.proxy_cores
    free = max(n - p, 1)
    u = args.upstream_cores or max(1, min(4, free // 2))
    w = args.wrk_cores or max(1, min(4, free - u))
    proxy_cores, up_cores, load_cores, u, w = layout(n, p, u, w)
    modes = args.modes.split(",") if p > 1 else ["default"]
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
    checked = CHECKED

    up_port, proxy_port, jwks_port = free_port(), free_port(), free_port()
    procs = []
    results = {}
    try:
        jwks = subprocess.Popen([sys.executable, "-m", "http.server", str(jwks_port), "--bind", "127.0.0.1",
                                 "--directory", os.path.join(work, "jwks")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(jwks)
        upstream = nginx("upstream.conf", work, "upstream", up_cores, PORT=up_port, WORKERS=u)
        procs.append(upstream)
        proxy = nginx("proxy.conf", work, "proxy", proxy_cores, PORT=proxy_port, UPSTREAM=up_port, WORKERS=p)
        procs.append(proxy)
        waits = [(jwks_port, jwks), (up_port, upstream), (proxy_port, proxy)]
        gateways = {}
        for mode in modes:
            port = free_port()
            env = {**os.environ, "UPSTREAM_PORT": str(up_port),
                   "JWKS_URL": f"http://127.0.0.1:{jwks_port}/jwks.json"}
            if mode != "default":
                env["GWGEN_RUNTIME"] = mode
            log = open(os.path.join(work, f"gateway-{mode}.log"), "w")
            gw = subprocess.Popen(["taskset", "-c", proxy_cores, binary, "--listen", f"127.0.0.1:{port}"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
            procs.append(gw)
            gateways[mode] = (port, gw)
            waits.append((port, gw))
        for port, proc in waits:
            wait_port(port, proc)
        targets = [
            ("(a) upstream directly", up_port, "/plain", None, lambda: family(upstream.pid)),
            ("(b) nginx reverse proxy", proxy_port, "/plain", None, lambda: family(proxy.pid)),
        ]
        for mode, (port, gw) in gateways.items():
            tag = "" if mode == "default" else f", {mode}"
            pids = (lambda pid: lambda: [pid])(gw.pid)
            targets += [
                (f"(c) gateway, plain proxy route{tag}", port, "/plain", None, pids),
                (f"(f) gateway, validated path + query GET{tag}", port, checked, None, pids),
                (f"(d) gateway, JWT + throttle + validation{tag}", port, "/orders", post, pids),
                (f"(h) gateway, plain route with header transforms{tag}", port, "/plain-transformed", None, pids),
                (f"(i) gateway, the POST of (d) unchecked{tag}", port, "/orders-plain", post, pids),
                (f"(j) gateway, the POST of (i) with its JSON body mapped{tag}", port, "/orders-mapped", post, pids),
                (f"(k) gateway, plain route over three targets{tag}", port, "/three", None, pids),
            ]
        targets.append(("(e) nginx reverse proxy, same POST", proxy_port, "/orders", post,
                        lambda: family(proxy.pid)))
        targets.append(("(g) nginx reverse proxy, the URL of (f)", proxy_port, checked, None,
                        lambda: family(proxy.pid)))
        targets.append(("(l) nginx reverse proxy, an upstream block of three", proxy_port, "/three", None,
                        lambda: family(proxy.pid)))
        targets = [t for t in targets if t[0][1] in args.only + "ab"]
        run = lambda port, path, secs, script: wrk(port, path, secs, args.connections, script,  # noqa: E731
                                                   cores=load_cores, threads=w)
        for name, port, path, script, _ in targets:  # warm-up: pools, JWKS, caches
            run(port, path, 2, script)
        results = {name: [] for name, *_ in targets}
        for _ in range(args.reps):
            for name, port, path, script, pids in targets:
                ps = pids()
                before = cpu_ticks(ps)
                requests, rps, p50, p99 = run(port, path, args.seconds, script)
                cpu_us = (cpu_ticks(ps) - before) / TICK * 1e6 / max(requests, 1)
                results[name].append((rps, p50, p99, cpu_us))
        # Each rep's rates in run order, for the paired ratios below.
        in_order = {name: [r[0] for r in reps] for name, reps in results.items()}
        rows = {}
        for name, reps in results.items():
            reps.sort(key=lambda r: r[0])
            rows[name] = reps[len(reps) // 2]
        latency = []
        if args.latency:
            first_gw = [t for t in targets if t[0].startswith("(c)")]
            pairs = [t for t in targets if t[0].startswith("(b)")] + first_gw
            rate = 0.5 * min(rows[t[0]][0] for t in pairs)
            runs = {t[0]: [] for t in pairs}
            for _ in range(args.reps):  # interleaved, as the peak runs: the median p99 of each
                for name, port, path, script, _ in pairs:
                    runs[name].append(oha_latency(port, path, args.seconds, args.connections, rate, load_cores))
            for name, reps in runs.items():
                reps.sort(key=lambda r: r[1])
                p50, p99, served = reps[len(reps) // 2]
                latency.append((name, rate, p50, p99, served, [r[1] for r in reps]))
    finally:
        stop(procs)
        # The access logs of the runs reach gigabytes.
        shutil.rmtree(work, ignore_errors=True)
    a = rows["(a) upstream directly"][0]
    b = rows["(b) nginx reverse proxy"][0]
    print(f"P = {p} proxy cores of {n}: proxy on cores {proxy_cores}, upstream nginx ({u} workers) on "
          f"{up_cores}, wrk -t{w} -c{args.connections} on {load_cores}; {args.seconds} s x {args.reps} "
          f"interleaved reps (medians); body of (d)/(e): {len(body)} bytes")
    print()
    print("| target | requests/s | p50 | p99 | CPU µs/request | vs. (a) upstream | vs. (b) nginx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (rps, p50, p99, cpu) in rows.items():
        print(f"| {name} | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms | {cpu:.1f} | {rps / a:.2f} | {rps / b:.2f} |")
    print()
    e = rows.get("(e) nginx reverse proxy, same POST")
    for mode in modes:
        tag = "" if mode == "default" else f", {mode}"
        c = rows.get(f"(c) gateway, plain proxy route{tag}")
        f_ = rows.get(f"(f) gateway, validated path + query GET{tag}")
        d = rows.get(f"(d) gateway, JWT + throttle + validation{tag}")
        parts = []
        if c:
            parts.append(f"(c)/(b) {c[0] / b:.2f}")
        if c and f_:
            parts.append(f"(f)/(c) {f_[0] / c[0]:.2f}")
        g = rows.get("(g) nginx reverse proxy, the URL of (f)")
        if f_ and g:
            parts.append(f"(f)/(g) {f_[0] / g[0]:.2f} (against (g)/(b) {g[0] / b:.2f})")
        if d and e:
            parts.append(f"(d)/(e) {d[0] / e[0]:.2f}")
        h = rows.get(f"(h) gateway, plain route with header transforms{tag}")
        if c and h:
            parts.append(f"(h)/(c) {h[0] / c[0]:.2f} ({h[3] - c[3]:+.1f} µs of CPU)")
        i = rows.get(f"(i) gateway, the POST of (d) unchecked{tag}")
        j = rows.get(f"(j) gateway, the POST of (i) with its JSON body mapped{tag}")
        if i and j:
            parts.append(f"(j)/(i) {j[0] / i[0]:.2f} ({j[3] - i[3]:+.1f} µs of CPU)")
        print(f"goals{tag or ''}: " + "; ".join(parts))
    # The machine's speed drifts between reps; a ratio of two targets run in the same round (a
    # few seconds apart) moves less than the ratio of their medians. The median of those.
    for mode in modes:
        tag = "" if mode == "default" else f", {mode}"
        pairs = [("(c)/(b)", f"(c) gateway, plain proxy route{tag}", "(b) nginx reverse proxy"),
                 ("(f)/(c)", f"(f) gateway, validated path + query GET{tag}",
                  f"(c) gateway, plain proxy route{tag}"),
                 ("(d)/(e)", f"(d) gateway, JWT + throttle + validation{tag}",
                  "(e) nginx reverse proxy, same POST")]
        paired = []
        for label, x, y in pairs:
            if x in in_order and y in in_order:
                ratios = sorted(xr / yr for xr, yr in zip(in_order[x], in_order[y]))
                paired.append(f"{label} {ratios[len(ratios) // 2]:.2f} "
                              f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})")
        if paired:
            print()
            print(f"paired by round{tag} (median of each round's ratio): " + "; ".join(paired))
    spread = {name: (min(r[0] for r in reps), max(r[0] for r in reps)) for name, reps in results.items()}
    print()
    print("req/s range over the reps: " + "; ".join(f"{n_.split(')')[0]}) {lo:,.0f}–{hi:,.0f}"
                                                     for n_, (lo, hi) in spread.items()))
    if latency:
        print()
        print(f"At a fixed rate (oha -q, -c{args.connections}, latency from when each request was due; "
              f"the rep with the median p99 of {args.reps}):")
        print()
        print("| target | rate asked | rate served | p50 | p99 | p99 of each rep |")
        print("|---|---:|---:|---:|---:|---|")
        for name, rate, p50, p99, served, all_p99 in latency:
            each = ", ".join(f"{v:.2f}" for v in all_p99)
            print(f"| {name} | {rate:,.0f} | {served:,.0f} | {p50:.2f} ms | {p99:.2f} ms | {each} ms |")


if __name__ == "__main__":
    main()
