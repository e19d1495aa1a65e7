"""What the wrk-driven benchmark scripts share: free ports, waiting for a server, and one wrk run
pinned to given cores (core 1 unless told), parsed."""
import re
import socket
import subprocess
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc=None):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                sys.exit(f"a server exited with {proc.returncode}")
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def wrk(port, path, seconds, connections, script=None, cores="1", threads=1, scheme="http"):
    """One wrk run (`threads` threads, pinned to `cores`): (requests, requests/s, p50 ms, p99 ms).
    Exits when any answer was not a 2xx or a socket failed."""
    cmd = ["taskset", "-c", cores, "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
           "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [f"{scheme}://127.0.0.1:{port}{path}"], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v, unit = float(m.group(1)), m.group(2)
        return v * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        sys.exit(f"{path} on {port}: not every answer was a 2xx:\n{out}")
    return requests, rps, pct(50), pct(99)


def stop(procs):
    """Stops the processes a benchmark started, last first (SIGTERM, then SIGKILL after 10 s)."""
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
