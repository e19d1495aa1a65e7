#!/usr/bin/env python3
"""Benchmark: `gwgen build` cold against a rebuild after a spec edit, and the GitHub gateway.

Usage: python3 bench/build_times.py [--skip-github]

1. specs/orders.yaml in a fresh build cache: a cold `gwgen build` (dependencies, runtime and
   gateway all compile), then the same after editing the spec (a new operation), which should
   recompile only the gateway crate. Prints both times and their ratio (goal: at most 0.25).
2. GitHub's REST description (1,223 operations served as mocks): `gwgen generate` time, a cold
   `gwgen build --release`, a release rebuild after an edit (the gateway crate alone), and the
   binary's size.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GITHUB = os.path.join(ROOT, "tests", "corpus", "specs", "large", "github", "api.github.com.json")


def timed(cmd, env):
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True, text=True)
    return time.perf_counter() - start, out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gwgen"], cwd=ROOT, check=True)
    gwgen = os.path.join(ROOT, "target", "release", "gwgen")
    work = tempfile.mkdtemp(prefix="gwgen-build-bench-")
    env = dict(os.environ, GWGEN_CACHE_DIR=os.path.join(work, "cache"))
    try:
        spec = os.path.join(work, "orders.yaml")
        shutil.copy(os.path.join(ROOT, "specs", "orders.yaml"), spec)
        cold, _ = timed([gwgen, "build", spec], env)
        with open(spec, "a") as f:
            f.write("\n".join([
                "",
                "x-bench-edit: true",
            ]))
        text = open(spec).read().replace(
            "  /health:\n",
            "  /status:\n    get:\n      security: []\n      responses: { \"200\": { description: added by the benchmark } }\n  /health:\n",
        )
        open(spec, "w").write(text)
        rebuild, _ = timed([gwgen, "build", spec], env)
        print("| build of specs/orders.yaml (dev profile) | seconds |")
        print("|---|---:|")
        print(f"| cold: dependencies, runtime and gateway | {cold:.1f} |")
        print(f"| rebuild after adding an operation | {rebuild:.1f} |")
        print(f"| ratio rebuild / cold | {rebuild / cold:.3f} |")

        if "--skip-github" in sys.argv:
            return
        gen_dir = os.path.join(work, "github-crate")
        generate, _ = timed([gwgen, "generate", GITHUB, "-o", gen_dir], env)
        gh = os.path.join(work, "github.json")
        shutil.copy(GITHUB, gh)
        cold_gh, binary = timed([gwgen, "build", "--release", gh], env)
        raw = open(gh).read().replace('"version": "1.1.4"', '"version": "1.1.5"', 1)
        if raw == open(gh).read():
            raw = raw.replace('"title": "', '"title": "Edited ', 1)
        open(gh, "w").write(raw)
        rebuild_gh, binary = timed([gwgen, "build", "--release", gh], env)
        size = os.path.getsize(binary)
        lines = sum(1 for _ in open(os.path.join(gen_dir, "src", "lib.rs")))
        print()
        print("| GitHub's spec, 1,223 operations as mocks | value |")
        print("|---|---:|")
        print(f"| `gwgen generate` | {generate:.2f} s |")
        print(f"| generated src/lib.rs | {lines} lines |")
        print(f"| `gwgen build --release`, cold cache | {cold_gh:.1f} s |")
        print(f"| `gwgen build --release` after an edit (gateway crate only) | {rebuild_gh:.1f} s |")
        print(f"| binary size | {size / 1e6:.1f} MB |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
