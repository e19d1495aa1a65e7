"""A raw HTTP/2 client (the `h2` package, from PyPI) that does what ordinary clients do not, and
prints what the server did as one JSON object.

    python h2_probe.py PORT MODE [CA_FILE]

With CA_FILE, the connection is TLS (ALPN `h2`, the server's certificate checked against
CA_FILE for 127.0.0.1); without, h2c with prior knowledge.

MODE:
- `mismatch`: one GET whose `host` field names another host than its `:authority`.
- `big-header`: one GET with 80 KB of header fields.
- `rapid-reset`: 1,000 GETs, each cancelled (RST_STREAM) right after its HEADERS
  (CVE-2023-44487); says whether and how the server ended the connection.
- `continuation`: one HEADERS frame without END_HEADERS, then CONTINUATION frames of junk
  fields for as long as the server reads them (up to 16 MiB); says how much it took.
- `idle`: sends the preface and settings, then nothing; says how long until the server closed.
- `limits`: reads the server's SETTINGS and its connection window, then opens 200 gRPC calls
  (POST /echo.Echo/Say) at once whose bodies never end, in raw frames (an ordinary client holds
  itself to the server's stream limit); says which the server refused (RST_STREAM
  REFUSED_STREAM).
"""

import json
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
from hyperframe.frame import ContinuationFrame, Frame, HeadersFrame, RstStreamFrame


CA_FILE = None
PATH = "/plain/7"


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if CA_FILE:
        context = ssl.create_default_context(cafile=CA_FILE)
        context.set_alpn_protocols(["h2"])
        s = context.wrap_socket(s, server_hostname="127.0.0.1")
        if s.selected_alpn_protocol() != "h2":
            sys.exit(f"the server chose {s.selected_alpn_protocol()!r}, not h2")
    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    return s, conn


def read_events(s, conn, until, limit=10.0):
    """Reads and feeds frames until `until(events)` holds, the server closes, or `limit` passes."""
    seen = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            seen.append("reset")
            break
        if not data:
            seen.append("closed")
            break
        try:
            seen.extend(conn.receive_data(data))
        except h2.exceptions.ProtocolError as e:
            seen.append(f"protocol-error: {e}")
            break
        out = conn.data_to_send()
        if out:
            try:
                s.sendall(out)
            except OSError:
                pass
        if until(seen):
            break
    return seen


def headers(port, authority="gw.test", extra=()):
    scheme = "https" if CA_FILE else "http"
    return [(":method", "GET"), (":scheme", scheme), (":authority", authority), (":path", PATH)] + list(extra)


def mismatch(port):
    s, conn = connect(port)
    conn.send_headers(1, headers(port, extra=[("host", "elsewhere.test")]), end_stream=True)
    s.sendall(conn.data_to_send())
    events = read_events(s, conn, lambda ev: any(isinstance(e, h2.events.StreamEnded) for e in ev))
    status = next((dict(e.headers).get(":status") for e in events if isinstance(e, h2.events.ResponseReceived)), None)
    return {"status": status}


def big_header(port):
    """One GET with 80 KB of header fields, more than the gateway's 64 KiB header limit."""
    s, conn = connect(port)
    conn.send_headers(1, headers(port, extra=[(f"x-big-{i}", "b" * 1000) for i in range(80)]), end_stream=True)
    s.sendall(conn.data_to_send())
    events = read_events(s, conn, lambda ev: any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset,
                                                                    h2.events.ConnectionTerminated)) for e in ev))
    status = next((dict(e.headers).get(":status") for e in events if isinstance(e, h2.events.ResponseReceived)), None)
    reset = next((getattr(e.error_code, "name", str(e.error_code)) for e in events
                  if isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated))), None)
    return {"status": status, "reset": reset}


def rapid_reset(port):
    s, conn = connect(port)
    sent = 0
    goaway = None

    def terminated(events):
        nonlocal goaway
        for e in events:
            if isinstance(e, h2.events.ConnectionTerminated):
                goaway = getattr(e.error_code, "name", str(e.error_code))
        return goaway is not None

    try:
        for i in range(1000):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, headers(port), end_stream=True)
            conn.reset_stream(sid, error_code=8)  # CANCEL
            s.sendall(conn.data_to_send())
            sent += 1
            # What the server said so far is read as the flood goes (over TLS, a connection the
            # server closed may lose it to a reset otherwise).
            if i % 25 == 24 and terminated(read_events(s, conn, lambda ev: False, 0.01)):
                break
    except (OSError, h2.exceptions.ProtocolError):
        pass
    if goaway is None:
        terminated(read_events(s, conn, terminated, 5.0))
    return {"sent": sent, "goaway": goaway}


def continuation(port):
    s, conn = connect(port)
    sid = conn.get_next_available_stream_id()
    first = HeadersFrame(sid)
    first.data = conn.encoder.encode(headers(port))
    first.flags = set()  # no END_HEADERS: CONTINUATION frames must follow
    sent = 0
    try:
        s.sendall(first.serialize())
        junk = conn.encoder.encode([(f"x-junk-{i}", "j" * 100) for i in range(100)])
        while sent < 16 << 20:
            frame = ContinuationFrame(sid)
            frame.data = junk
            s.sendall(frame.serialize())
            sent += len(junk)
    except OSError:
        pass
    return {"accepted_bytes_at_most": sent}


def idle(port):
    s, conn = connect(port)
    started = time.monotonic()
    events = read_events(s, conn, lambda ev: False, 60.0)
    ended = [e if isinstance(e, str) else type(e).__name__ for e in events]
    return {"closed_after_s": round(time.monotonic() - started, 1), "events": ended}


def limits(port):
    s, conn = connect(port)
    # The server's SETTINGS and the window updates that follow them.
    events = read_events(s, conn, lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in ev), 5.0)
    events += read_events(s, conn, lambda ev: False, 0.3)
    settings = {}
    for e in events:
        if isinstance(e, h2.events.RemoteSettingsChanged):
            for k, v in e.changed_settings.items():
                settings[getattr(k, "name", str(k))] = v.new_value
    window = conn.outbound_flow_control_window
    # 200 calls at once, in raw HEADERS frames (no END_STREAM: each call's body stays open).
    scheme = "https" if CA_FILE else "http"
    fields = [(":method", "POST"), (":scheme", scheme), (":authority", "gw.test"),
              (":path", "/echo.Echo/Say"), ("content-type", "application/grpc"), ("te", "trailers")]
    out = b""
    first = conn.get_next_available_stream_id()
    for i in range(200):
        frame = HeadersFrame(first + 2 * i)
        frame.data = conn.encoder.encode(fields)
        frame.flags = {"END_HEADERS"}
        out += frame.serialize()
    s.sendall(out)
    refused, buf = [], b""
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except (socket.timeout, OSError):
            break
        if not data:
            break
        buf += data
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9:9 + length]))
            buf = buf[9 + length:]
            if isinstance(frame, RstStreamFrame) and frame.error_code == 7:
                refused.append(frame.stream_id)
    index = sorted((sid - first) // 2 for sid in refused)
    return {"settings": settings, "connection_window": window, "refused": len(refused),
            "first_refused": index[0] if index else None}


def main():
    global CA_FILE
    port, mode = int(sys.argv[1]), sys.argv[2]
    global PATH
    CA_FILE = sys.argv[3] if len(sys.argv) > 3 else None
    if CA_FILE:
        PATH = "/open/7"
    modes = {"mismatch": mismatch, "big-header": big_header, "rapid-reset": rapid_reset,
             "continuation": continuation, "idle": idle, "limits": limits}
    result = modes[mode](port)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
