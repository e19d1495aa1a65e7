#!/usr/bin/env python3
"""Benchmark: `gwgen check`'s human output against `--format json` on a spec with many diagnostics.

Usage: python3 bench/check_render.py [SPEC] [--runs 10]

SPEC defaults to GitHub's REST description from the vendored corpus (13 MB, 1,223 operations,
586 warnings). Builds gwgen with `cargo build --release`, then runs each format `--runs` times
after a warm-up, interleaved, and prints the median wall time of each and their ratio. The human
renderer should cost little beside the analysis: the goal is a ratio of at most 1.2.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SPEC = os.path.join(ROOT, "tests", "corpus", "specs", "large", "github", "api.github.com.json")


def run(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default=DEFAULT_SPEC)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gwgen"], cwd=ROOT, check=True)
    gwgen = os.path.join(ROOT, "target", "release", "gwgen")
    formats = {"human": [gwgen, "check", args.spec], "json": [gwgen, "check", "--format", "json", args.spec]}
    times = {name: [] for name in formats}
    for cmd in formats.values():
        run(cmd)
    for _ in range(args.runs):
        for name, cmd in formats.items():
            times[name].append(run(cmd))
    human, js = statistics.median(times["human"]), statistics.median(times["json"])
    print(f"`gwgen check` on {os.path.relpath(args.spec, ROOT)}, {args.runs} interleaved runs, medians\n")
    print("| format | wall s |")
    print("|---|---:|")
    print(f"| human (default) | {human:.3f} |")
    print(f"| --format json | {js:.3f} |")
    print(f"\nhuman / json: {human / js:.2f} (goal: at most 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
