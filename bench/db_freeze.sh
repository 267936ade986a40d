#!/usr/bin/env bash
# The database deadline under load: CLIENTS keep-alive clients send a mix of requests (GET /api/auth/me,
# GET /api/entries, GET /api/summary, GET /health) without pause while every process of the PostgreSQL
# cluster is stopped with SIGSTOP for FREEZE seconds (a hung host or a paused container: the kernel still
# ACKs), then continued. Prints, per phase, the answers and their latency, the slowest request overall,
# whether every 503 carried Retry-After, and how soon after the thaw requests succeeded again.
#
#   bench/db_freeze.sh     (CLIENTS=30 FREEZE=10 BEFORE=3 AFTER=8 DB_TIMEOUT=1500ms)
#
# Release build of the app; a throwaway PostgreSQL from testkit (app/examples/bench_db.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS="${CLIENTS:-30}"
FREEZE="${FREEZE:-10}"
BEFORE="${BEFORE:-3}"
AFTER="${AFTER:-8}"
DB_TIMEOUT="${DB_TIMEOUT:-1500ms}"

. bench/lib/throwaway_app.sh
require_tools curl python3
build_app

# Never leave the cluster frozen: the load below writes the PIDs it stops to $WORK/stopped before stopping them.
# shellcheck disable=SC2046 # one PID a line
continue_stopped() { [ -s "$WORK/stopped" ] && kill -CONT $(cat "$WORK/stopped") 2>/dev/null || true; }
CLEANUP_HOOKS+=(continue_stopped)

start_throwaway_db
DB_PORT="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).port)' "$DATABASE_URL")"
POSTMASTER="$(pgrep -f -- "postgres -D .* -p $DB_PORT( |$)" | head -n1)"
[ -n "$POSTMASTER" ] || { echo "no postmaster listening on port $DB_PORT" >&2; exit 1; }

start_app DB_TIMEOUT="$DB_TIMEOUT"

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(nproc) cores; $CLIENTS clients; DB_TIMEOUT=$DB_TIMEOUT; freeze ${FREEZE}s after ${BEFORE}s, then ${AFTER}s more"
PORT="$PORT" POSTMASTER="$POSTMASTER" CLIENTS="$CLIENTS" FREEZE="$FREEZE" BEFORE="$BEFORE" AFTER="$AFTER" \
    WORK="$WORK" python3 - <<'EOF'
import http.client, json, os, signal, subprocess, threading, time

port = int(os.environ["PORT"])
postmaster = int(os.environ["POSTMASTER"])
clients, freeze = int(os.environ["CLIENTS"]), float(os.environ["FREEZE"])
before, after = float(os.environ["BEFORE"]), float(os.environ["AFTER"])

def call(conn, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    return response.status, response.getheader("Retry-After"), response.read()

setup = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
credentials = {"email": "freeze@example.com", "password": "benchmark password"}
call(setup, "POST", "/api/auth/register", credentials)
token = json.loads(call(setup, "POST", "/api/auth/login", credentials)[2])["token"]
for i in range(50):
    call(setup, "POST", "/api/entries", {"source": "manual", "externalId": f"e{i}",
         "date": "2024-03-01T09:00:00Z", "duration": 1, "project": f"p{i % 5}", "description": ""}, token)

paths = ["/api/auth/me", "/api/entries?limit=20", "/api/summary?group_by=project", "/health"]
records = []  # (start, end, status, retry_after)
lock = threading.Lock()
stop = threading.Event()

def client(n):
    conn = None
    i = n
    while not stop.is_set():
        path = paths[i % len(paths)]
        i += 1
        started = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            status, retry_after, _ = call(conn, "GET", path, token=token)
        except Exception:
            status, retry_after, conn = 0, None, None
        with lock:
            records.append((started, time.monotonic(), status, retry_after))

def cluster_pids():
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
    return [postmaster] + [int(p) for p in children]

threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for t in threads:
    t.start()
time.sleep(before)
stopped = cluster_pids()
with open(os.path.join(os.environ["WORK"], "stopped"), "w") as f:
    f.write("\n".join(map(str, stopped)) + "\n")
frozen_at = time.monotonic()
for pid in stopped:
    os.kill(pid, signal.SIGSTOP)
time.sleep(freeze)
for pid in stopped:
    os.kill(pid, signal.SIGCONT)
thawed_at = time.monotonic()
time.sleep(after)
stop.set()
for t in threads:
    t.join()

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else 0.0

def row(what, rows):
    lat = [(e - s) * 1000 for s, e, _, _ in rows]
    ok = sum(1 for r in rows if 200 <= r[2] < 300)
    unavailable = sum(1 for r in rows if r[2] == 503)
    other = len(rows) - ok - unavailable
    print(f"{what:<34} {len(rows):>7} {ok:>7} {unavailable:>6} {other:>6} {pct(lat, 50):>8.1f} {pct(lat, 99):>8.1f} {max(lat, default=0):>8.1f}")

print(f"{len(stopped)} PostgreSQL processes stopped")
print(f"{'requests started':<34} {'count':>7} {'2xx':>7} {'503':>6} {'other':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
row("before the freeze", [r for r in records if r[0] < frozen_at])
row("during the freeze", [r for r in records if frozen_at <= r[0] < thawed_at])
row("first 5 s after the thaw", [r for r in records if thawed_at <= r[0] < thawed_at + 5])
row("later", [r for r in records if r[0] >= thawed_at + 5])
unavailable = [r for r in records if r[2] == 503]
print(f"503s with Retry-After: {sum(1 for r in unavailable if r[3])} of {len(unavailable)}")
print(f"slowest request: {max((e - s) for s, e, _, _ in records) * 1000:.1f} ms")
# Requests in flight at the thaw were waiting for the database: the first success may be one of them.
first_ok = min((r[1] for r in records if r[1] >= thawed_at and 200 <= r[2] < 300), default=None)
if first_ok is not None:
    print(f"first success answered {1000 * (first_ok - thawed_at):.0f} ms after the thaw")
failed = [r for r in records if r[0] >= thawed_at and not 200 <= r[2] < 300]
if failed:
    print(f"last failure of a request started after the thaw: {1000 * (max(r[1] for r in failed) - thawed_at):.0f} ms after it")
else:
    print("every request started after the thaw succeeded")
EOF
