"""A WebSocket client for the tests: the `websockets` library (PyPI), as applications use it.

Usage: ws_client.py PLAN_JSON
PLAN: {"url": ..., "agent": USER_AGENT, "headers": {...}, "subprotocols": [...], "ca": CA_FILE
(for wss://), "steps": [...]};
steps, in order:
  {"send": TEXT} | {"send_json": VALUE} | {"send_bytes": N} (N bytes of `x`, one frame)
  {"recv": SECONDS}     one message (or a timeout) into `received`
  {"ping": SECONDS}     a ping, and the time until its pong
  {"wait_close": SECONDS}
  {"sleep": SECONDS}
  {"ready": PATH}       writes PATH once the steps before it are done
Prints one JSON object: {"status": 101 or the refusal's status, "protocol": ..., "received":
[...], "pongs": [...], "close": {"code": ..., "reason": ...} or null, "error": ...}.
"""

import json
import ssl
import sys
import time

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

plan = json.loads(sys.argv[1])
out = {"status": None, "protocol": None, "received": [], "pongs": [], "close": None, "error": None}


def closed(ws):
    """The close frame the gateway sent (1006 and no reason when none came)."""
    rcvd = ws.protocol.close_rcvd
    if rcvd is not None:
        out["close"] = {"code": rcvd.code, "reason": rcvd.reason}
    elif ws.close_code is not None:
        out["close"] = {"code": ws.close_code, "reason": ws.close_reason}


try:
    with connect(
        plan["url"],
        additional_headers=plan.get("headers", {}),
        subprotocols=plan.get("subprotocols"),
        user_agent_header=plan.get("agent", "ws_client"),
        open_timeout=10,
        max_size=None,
        ping_interval=None,
        close_timeout=5,
        ssl=ssl.create_default_context(cafile=plan["ca"]) if plan.get("ca") else None,
    ) as ws:
        out["status"] = 101
        out["protocol"] = ws.subprotocol
        try:
            for step in plan.get("steps", []):
                if "send" in step:
                    ws.send(step["send"])
                elif "send_json" in step:
                    ws.send(json.dumps(step["send_json"]))
                elif "send_bytes" in step:
                    ws.send(b"x" * step["send_bytes"])
                elif "recv" in step:
                    try:
                        m = ws.recv(timeout=step["recv"])
                        out["received"].append(m if isinstance(m, str) else {"binary": len(m)})
                    except TimeoutError:
                        out["received"].append(None)
                elif "ping" in step:
                    started = time.monotonic()
                    ws.ping().wait(step["ping"])
                    out["pongs"].append(time.monotonic() - started)
                elif "wait_close" in step:
                    try:
                        while True:
                            m = ws.recv(timeout=step["wait_close"])
                            out["received"].append(m if isinstance(m, str) else {"binary": len(m)})
                    except TimeoutError:
                        pass
                elif "sleep" in step:
                    time.sleep(step["sleep"])
                elif "ready" in step:
                    open(step["ready"], "w").close()
        except ConnectionClosed:
            pass
    # Leaving the block closed the connection (if the gateway had not).
    closed(ws)
except InvalidStatus as e:
    out["status"] = e.response.status_code
    out["error"] = e.response.body.decode(errors="replace") if e.response.body else None
except Exception as e:  # what a client sees: reported, not raised
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
