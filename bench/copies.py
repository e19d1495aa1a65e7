#!/usr/bin/env python3
"""Memory copies per request of the gateway's routes in `specs/performance.yaml`: how many times,
and how many bytes, a request's work calls the C library's `memcpy`/`memmove`, and from where.

Usage: python3 bench/copies.py [--only cfd] [--sites 25]

Needs perf (with uprobes: run as root), wrk, nginx and openssl (Debian: `apt-get install
linux-perf wrk nginx-light openssl`).

Rust moves a value larger than about 128 bytes with a call to `memcpy`: a request (240 bytes), an
answer, a future that is awaited or boxed. Each call is cheap, but a request makes dozens, and a
profile by time (`perf record -e cpu-clock`) showed `memmove` as the gateway's largest user-space
function on the plain route. Instruction counts (`bench/instructions.py`) hide them: the copies'
vector loops are few instructions for many bytes.

For each route, (c) GET /plain, (f) the GET with validated path and query parameters, (d) the POST
with a JWT, a throttle and a validated body, (i) the POST of (d) unchecked (`--only` picks them):

1. builds the gateway with line tables (`CARGO_PROFILE_RELEASE_DEBUG=line-tables-only`), starts
   the upstream nginx, a JWKS server and the gateway (`GWGEN_RUNTIME=current_thread`);
2. puts a uprobe on each of the C library's `__memmove_*_unaligned_erms` (the one the CPU uses
   is among them; `memcpy` is the same code), recording the length and the caller (DWARF unwind);
3. warms the route up, then records while wrk sends requests for a second on one connection,
   and divides what was recorded by the requests the access log shows for that second;
4. prints the calls and bytes per request, and the `--sites` largest call sites (bytes a request,
   by length and by the caller's source line).
"""
import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port  # noqa: E402
from instructions import answered, upstreams  # noqa: E402
from proxy_vs_nginx import CHECKED  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUTES = {"c": ("plain proxy route", "/plain"), "f": ("validated path + query GET", CHECKED),
          "d": ("JWT + throttle + validation", "/orders"),
          "i": ("the POST of (d) unchecked", "/orders-plain")}
GROUP = "gwgen_copies"


def libc_path():
    out = subprocess.run(["ldd", "/bin/sh"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "libc.so" in line and "=>" in line:
            return line.split("=>")[1].split()[0]
    sys.exit("no libc found")


def add_probes(libc):
    names = subprocess.run(["perf", "probe", "-x", libc, "--funcs", "__memmove_*"], capture_output=True,
                           text=True).stdout.split()
    names = [n for n in names if re.fullmatch(r"__memmove_\w+_unaligned_erms", n)]
    added = []
    for i, name in enumerate(names):
        event = f"{GROUP}:m{i}"
        r = subprocess.run(["perf", "probe", "-q", "-x", libc, "--add", f"{event}={name} len=%dx:u64"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            added.append(event)
    if not added:
        sys.exit("no uprobe could be placed on the C library's memmove (perf probe, as root)")
    return added


def log_lines(path):
    with open(path) as f:
        return len(re.findall(r'"status":(\d+)', f.read()))


def sites(script_text):
    """(length, caller) → calls, from `perf script -F trace,ip,sym,srcline` output."""
    count = collections.Counter()
    for block in script_text.split("\n\n"):
        m = re.search(r"len=(\d+)", block)
        if not m:
            continue
        lines = block.strip("\n").splitlines()[1:]
        caller = "?"
        # The first frame that is not the C library's copy: its symbol and source line.
        for i, line in enumerate(lines):
            parts = line.split(None, 1)
            if len(parts) < 2 or not re.fullmatch(r"[0-9a-f]+", parts[0]):
                continue
            if "memmove" in parts[1] or "memcpy" in parts[1]:
                continue
            src = lines[i + 1].strip().split()[0] if i + 1 < len(lines) else ""
            caller = f"{re.sub(r'<.*>', '', parts[1])[:70]} @ {src}"
            break
        count[(int(m.group(1)), caller)] += 1
    return count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="cfd")
    ap.add_argument("--sites", type=int, default=25)
    args = ap.parse_args()
    for tool in ("perf", "wrk", "nginx", "openssl"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is needed")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gwgen"], cwd=ROOT, check=True)
    gwgen = os.path.join(ROOT, "target", "release", "gwgen")
    env = {**os.environ, "CARGO_PROFILE_RELEASE_DEBUG": "line-tables-only"}
    binary = subprocess.run([gwgen, "build", "--release", os.path.join(ROOT, "specs", "performance.yaml")],
                            check=True, stdout=subprocess.PIPE, text=True, env=env).stdout.strip().splitlines()[-1]
    work = tempfile.mkdtemp(prefix="gwgen-copies-")
    post, up_port, jwks_port, procs = upstreams(work)
    subprocess.run(["perf", "probe", "-q", "-d", f"{GROUP}:*"], capture_output=True)
    events = add_probes(libc_path())
    rows = []
    try:
        for key in args.only:
            name, path = ROUTES[key]
            log_path = os.path.join(work, f"gateway-{key}.log")
            port = free_port()
            genv = {**os.environ, "GWGEN_RUNTIME": "current_thread", "UPSTREAM_PORT": str(up_port),
                    "JWKS_URL": f"http://127.0.0.1:{jwks_port}/jwks.json"}
            with open(log_path, "w") as log:
                gw = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}"], env=genv, stdout=log,
                                      stderr=subprocess.STDOUT)
            data = os.path.join(work, f"copies-{key}.data")
            try:
                wait_port(port, gw)
                script = ["-s", post] if key in "di" else []
                url = f"http://127.0.0.1:{port}{path}"
                wrk = ["wrk", "-t1", "-c1", "-d1s", *script, url]
                subprocess.run(wrk, check=True, stdout=subprocess.DEVNULL)
                time.sleep(0.3)  # the access log is written every 50 ms
                before = log_lines(log_path)
                rec = subprocess.Popen(["perf", "record", "-q", "-o", data, "--call-graph", "dwarf,2048",
                                        *sum((["-e", e] for e in events), []), "-p", str(gw.pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
                subprocess.run(wrk, check=True, stdout=subprocess.DEVNULL)
                time.sleep(0.3)
                rec.send_signal(signal.SIGINT)
                rec.wait(timeout=120)
                requests = log_lines(log_path) - before
            finally:
                gw.terminate()
                gw.wait(timeout=60)
            answered(key, log_path)
            text = subprocess.run(["perf", "script", "-i", data, "-F", "trace,ip,sym,srcline"],
                                  capture_output=True, text=True).stdout
            count = sites(text)
            calls = sum(count.values())
            moved = sum(n * length for (length, _), n in count.items())
            rows.append((f"({key}) {name}", requests, calls / requests, moved / requests, count))
    finally:
        subprocess.run(["perf", "probe", "-q", "-d", f"{GROUP}:*"], capture_output=True)
        for p in procs:
            p.terminate()
        shutil.rmtree(work, ignore_errors=True)
    print("| route | requests | copies/request | bytes/request |\n|---|---:|---:|---:|")
    for name, n, calls, moved, _ in rows:
        print(f"| {name} | {n:,} | {calls:.1f} | {moved:,.0f} |")
    for name, n, _, _, count in rows:
        print(f"\n{name}: the largest call sites (bytes a request: calls a request × length, caller)")
        top = sorted(count.items(), key=lambda kv: -kv[1] * kv[0][0])[:args.sites]
        for (length, caller), c in top:
            print(f"  {c * length / n:8,.0f}  {c / n:4.1f} × {length:5}  {caller}")


if __name__ == "__main__":
    main()
