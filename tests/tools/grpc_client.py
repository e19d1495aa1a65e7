"""A gRPC client (grpcio, from PyPI) for the HTTP/2 tests: makes every kind of call to TARGET
over h2c and prints what it got as one JSON object.

    python grpc_client.py HOST:PORT SERVICE [METHOD [SIZE]]

SERVICE is `echo.Echo` or `secure.Echo` (see grpc_upstream.py). Messages are raw bytes. With
METHOD, makes that one unary call (with a message of SIZE bytes, default 3) and prints its status
code and details.
"""

import json
import sys
import time

import grpc


def text(b):
    return b.decode("utf-8", "replace")


def main():
    target, service = sys.argv[1], sys.argv[2]
    out = {}
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        if len(sys.argv) > 3:
            try:
                message = b"x" * int(sys.argv[4]) if len(sys.argv) > 4 else b"one"
                answer = channel.unary_unary(f"/{service}/{sys.argv[3]}")(message, timeout=10)
                print(json.dumps({"code": "OK", "answer": text(answer)}))
            except grpc.RpcError as e:
                print(json.dumps({"code": e.code().name, "details": e.details()}))
            return

        def method(kind, name):
            return getattr(channel, kind)(f"/{service}/{name}")

        answer, call = method("unary_unary", "Unary").with_call(b"hello", timeout=10)
        out["unary"] = {
            "answer": text(answer),
            "code": call.code().name,
            "initial": dict(call.initial_metadata()),
            "trailing": dict(call.trailing_metadata()),
        }

        try:
            method("unary_unary", "Fail")(b"x", timeout=10)
            out["fail"] = {"code": "OK"}
        except grpc.RpcError as e:
            out["fail"] = {
                "code": e.code().name,
                "details": e.details(),
                "trailing": dict(e.trailing_metadata() or ()),
            }

        started = time.monotonic()
        arrivals = []
        for message in method("unary_stream", "ServerStream")(b"4", timeout=20):
            arrivals.append([text(message), round(time.monotonic() - started, 3)])
        out["server_stream"] = arrivals

        out["client_stream"] = text(
            method("stream_unary", "ClientStream")(iter([b"a", b"b", b"c"]), timeout=10)
        )

        out["bidi"] = [
            text(m)
            for m in method("stream_stream", "Bidi")(iter([b"1", b"2", b"3"]), timeout=10)
        ]

        out["meta"] = json.loads(
            method("unary_unary", "Meta")(
                b"", timeout=10, metadata=(("x-caller", "c1"), ("x-forwarded-host", "forged"))
            )
        )

        try:
            channel.unary_unary("/nosuch.Service/Call")(b"", timeout=10)
            out["unrouted"] = {"code": "OK"}
        except grpc.RpcError as e:
            out["unrouted"] = {"code": e.code().name}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
