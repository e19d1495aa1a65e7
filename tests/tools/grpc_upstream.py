"""A gRPC server (grpcio, from PyPI) for the HTTP/2 upstream tests.

    python grpc_upstream.py PORT_FILE [CERT KEY]

Listens on 127.0.0.1 on a free port (h2c, or TLS with ALPN h2 when CERT and KEY are given) and
writes the port to PORT_FILE. It serves the services `echo.Echo`, `secure.Echo` and `small.Echo`, with raw
bytes for messages (no protobuf), so that what travels is exactly what the test sent:

- `Unary`: answers `echo:` + the message, with initial metadata `x-initial: i1` and trailing
  metadata `x-trailer: t1`.
- `Fail`: ends with status NOT_FOUND, details `no such thing`, and trailer `x-why: missing`.
- `ServerStream`: the message is a count N; answers N messages `m0`, `m1`, … 200 ms apart.
- `ClientStream`: answers the messages it got, joined by `,`.
- `Bidi`: answers each message as it arrives, `re:` + the message.
- `Meta`: answers the request's metadata (the headers the upstream got) as JSON.
"""

import json
import os
import sys
import time
from concurrent import futures

import grpc


def unary(request, context):
    context.send_initial_metadata((("x-initial", "i1"),))
    context.set_trailing_metadata((("x-trailer", "t1"),))
    return b"echo:" + request


def fail(request, context):
    context.set_trailing_metadata((("x-why", "missing"),))
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def server_stream(request, context):
    for i in range(int(request.decode() or "0")):
        if i:
            time.sleep(0.2)
        yield f"m{i}".encode()


def client_stream(request_iterator, context):
    return b",".join(request_iterator)


def bidi(request_iterator, context):
    for message in request_iterator:
        yield b"re:" + message


def meta(request, context):
    return json.dumps([[k, v if isinstance(v, str) else "(binary)"] for k, v in context.invocation_metadata()]).encode()


def handlers():
    return {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Meta": grpc.unary_unary_rpc_method_handler(meta),
    }


def main():
    port_file = sys.argv[1]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler("echo.Echo", handlers()),
            grpc.method_handlers_generic_handler("secure.Echo", handlers()),
            grpc.method_handlers_generic_handler("small.Echo", handlers()),
        )
    )
    if len(sys.argv) > 3:
        with open(sys.argv[2], "rb") as c, open(sys.argv[3], "rb") as k:
            creds = grpc.ssl_server_credentials(((k.read(), c.read()),))
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, port_file)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
