#!/usr/bin/env python3
"""Benchmark: `gwgen check` against `redocly lint` on the same spec, in the same run.

Usage: python3 bench/check_vs_redocly.py [SPEC] [--runs N]

SPEC defaults to GitHub's REST description from the vendored corpus (tests/corpus) (13 MB, 1,223 operations).
Builds gwgen in release mode, installs the pinned @redocly/cli into bench/.work (npm), then
runs each tool N times (default 5) alternately and prints wall time and peak memory (max RSS
of the process tree's largest process, from wait4) as medians, with the ratios.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench", ".work")
DEFAULT_SPEC = os.path.join(ROOT, "tests", "corpus", "specs", "large", "github", "api.github.com.json")


def run(cmd):
    """Runs cmd with output discarded; returns (seconds, peak RSS in MiB, exit status)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    return elapsed, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default=DEFAULT_SPEC)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    spec = os.path.abspath(args.spec)

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gwgen"], cwd=ROOT, check=True)
    gwgen = os.path.join(ROOT, "target", "release", "gwgen")

    redocly = os.path.join(WORK, "node_modules", ".bin", "redocly")
    if not os.path.exists(redocly):
        os.makedirs(WORK, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "bench", "package.json"), os.path.join(WORK, "package.json"))
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=WORK, check=True)

    tools = {
        "gwgen check": [gwgen, "check", "-q", spec],
        "redocly lint": [redocly, "lint", "--format=summary", spec],
    }
    env_note = os.environ.get("REDOCLY_TELEMETRY")
    os.environ["REDOCLY_TELEMETRY"] = "off"
    os.environ["REDOCLY_SUPPRESS_UPDATE_NOTICE"] = "true"
    results = {name: [] for name in tools}
    # One warm-up each (file cache, node's compile cache), then alternate.
    for cmd in tools.values():
        run(cmd)
    for _ in range(args.runs):
        for name, cmd in tools.items():
            results[name].append(run(cmd))
    if env_note is not None:
        os.environ["REDOCLY_TELEMETRY"] = env_note

    print(f"spec: {os.path.relpath(spec, ROOT)} ({os.path.getsize(spec) / 1e6:.1f} MB), {args.runs} runs each, medians")
    print(f"{'tool':<14} {'wall s':>8} {'peak MiB':>9} {'exit':>5}")
    med = {}
    for name, rs in results.items():
        t = statistics.median(r[0] for r in rs)
        m = statistics.median(r[1] for r in rs)
        med[name] = (t, m)
        print(f"{name:<14} {t:>8.3f} {m:>9.1f} {rs[-1][2]:>5}")
    (gt, gm), (rt, rm) = med["gwgen check"], med["redocly lint"]
    print(f"gwgen is {rt / gt:.1f}x faster and uses {rm / gm:.1f}x less memory than redocly lint")


if __name__ == "__main__":
    sys.exit(main())
