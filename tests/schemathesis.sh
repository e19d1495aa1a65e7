#!/usr/bin/env bash
# schemathesis against the gateway of specs/validation.yaml: schema-valid requests must be
# accepted, schema-violating ones refused with a 4xx, and nothing may answer 5xx.
#
#   tests/schemathesis.sh            # installs schemathesis into target/schemathesis-venv once
#
# The gateway is built through gwgen's cache, started on a free loopback port, and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
VENV=target/schemathesis-venv
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi

export GWGEN_CACHE_DIR="${GWGEN_CACHE_DIR:-target/e2e-gwgen-cache}"
bin=$(cargo run -q -p gwgen -- build specs/validation.yaml | tail -n 1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" --listen "127.0.0.1:$port" > target/schemathesis-gateway.log 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

"$VENV/bin/schemathesis" run specs/validation.yaml \
    --url "http://127.0.0.1:$port" \
    --checks not_a_server_error,negative_data_rejection,positive_data_acceptance \
    --max-examples 100 \
    --seed 20261125 \
    --request-timeout 10 \
    --no-color
