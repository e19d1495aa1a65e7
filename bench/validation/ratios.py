#!/usr/bin/env python3
"""Prints the validation benchmark's table from criterion's saved estimates.

Run after `cargo bench --manifest-path bench/validation/Cargo.toml`.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CRIT = os.path.join(HERE, "target", "criterion")


def median_ns(group, name):
    path = os.path.join(CRIT, group, name, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def main():
    print("| body | gwgen, checked as read | gwgen, parse + validate | serde_json + jsonschema | serde_json parse alone | speed-up, as read | speed-up, parsed |")
    print("|---|---|---|---|---|---|---|")
    for size in ["1KB", "10KB"]:
        g = f"validate-{size}"
        try:
            stream = median_ns(g, "gwgen-stream")
            ours = median_ns(g, "gwgen")
            peer = median_ns(g, "serde_json+jsonschema")
            parse = median_ns(g, "serde_json-only")
        except FileNotFoundError:
            sys.exit("no results: run `cargo bench --manifest-path bench/validation/Cargo.toml` first")
        print(f"| {size} | {stream / 1000:.2f} µs | {ours / 1000:.2f} µs | {peer / 1000:.2f} µs | {parse / 1000:.2f} µs "
              f"| {peer / stream:.1f}x | {peer / ours:.1f}x |")


if __name__ == "__main__":
    main()
