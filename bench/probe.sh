#!/usr/bin/env bash
# Cost of one health check: `probe` beside `curl -fsS` against the same listener, plus the probe's size.
#
#   bench/probe.sh            (needs hyperfine: apt-get install -y hyperfine; RUNS=500 by default)
#
# The listener serves a document recorded from the real supervisor (probe/tests/fixtures/supervisor-pass.json)
# so both tools do the same work: connect, GET /health, read the JSON answer.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-500}"
command -v hyperfine >/dev/null || { echo "hyperfine is required: apt-get install -y hyperfine" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }

cargo build --release -p probe --quiet
PROBE=target/release/probe

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 bench/probe_server.py "$PORT" probe/tests/fixtures/supervisor-pass.json &
SERVER_PID=$!
URL="http://127.0.0.1:$PORT/health"
for _ in $(seq 100); do
    curl -fsS -o /dev/null "$URL" 2>/dev/null && break
    sleep 0.05
done
curl -fsS -o /dev/null "$URL"

echo "probe says: $("$PROBE" --url "$URL")"
hyperfine --shell=none --warmup 50 --runs "$RUNS" --style basic \
    --export-json "$WORK/result.json" \
    -n probe "$PROBE --url $URL" \
    -n "curl -fsS" "curl -fsS -o /dev/null $URL" >"$WORK/hyperfine.txt"

SIZE="$(stat -c %s "$PROBE")"
python3 - "$WORK/result.json" "$SIZE" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
size = int(sys.argv[2])
print()
print(f"{'tool':<12}{'median':>10}{'mean':>10}{'min':>10}{'max':>10}   (ms per call, {results[0]['times'].__len__()} runs)")
for r in results:
    ms = lambda v: f"{v * 1000:.2f}"
    print(f"{r['command']:<12}{ms(r['median']):>10}{ms(r['mean']):>10}{ms(r['min']):>10}{ms(r['max']):>10}")
probe, curl = results[0], results[1]
print()
print(f"probe median is {curl['median'] / probe['median']:.2f}x faster than curl -fsS")
print(f"probe binary: {size} bytes ({size / 1024 / 1024:.2f} MiB, release profile)")
PY
