#!/usr/bin/env bash
# Cold start of a scale-out: N replicas (the release `supervisor` running the release `app`, each with its own
# PORT, HEALTH_ADDR on 127.0.0.1 and application_name) launched at once against an empty database, timed from
# the first launch until the last replica's /readyz answers 200; beside it the same N started one after another
# (each launched once the previous one is ready). Each configuration runs directly against PostgreSQL and through
# Debian's PgBouncer in transaction and in session mode, RUNS times each, a fresh empty database per run.
#
# After every run: refinery_schema_history must hold each version of migrations/ exactly once, and exactly one
# replica must have logged applying migrations. Then, not timed, the apps' own database work through the same
# path, all replicas at once: 3 x GET /health (SELECT 1 through the app's pool) and 3 x GET /api/auth/me with an
# unknown token (a session lookup, 401) per replica. Prints one line per run, then medians and maxima with the
# load average (1 min) seen at each run's start.
#
#   bench/cold_start.sh    (needs psql, python3 and pgbouncer: apt-get install -y postgresql-client pgbouncer;
#                           RUNS=5 COUNTS="1 3 8" VIA="direct transaction session" READY_WAIT=60;
#                           OUT_DIR=DIR keeps each replica's log and PgBouncer's there)
#
# Release builds; a throwaway PostgreSQL from testkit (app/examples/bench_db.rs); PgBouncer from /usr/sbin.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-5}"
COUNTS="${COUNTS:-1 3 8}"
VIA="${VIA:-direct transaction session}"
READY_WAIT="${READY_WAIT:-60}"
OUT_DIR="${OUT_DIR:-}"

usage() { echo "bench/cold_start.sh: $1 (see the header of this script)" >&2; exit 64; }
[[ $RUNS =~ ^[1-9][0-9]?$ ]] || usage "RUNS must be 1-99"
[[ $READY_WAIT =~ ^[1-9][0-9]{0,2}$ ]] || usage "READY_WAIT must be 1-999 seconds"
for n in $COUNTS; do [[ $n =~ ^[1-9][0-9]?$ ]] || usage "COUNTS takes replica counts of 1-99"; done
for via in $VIA; do
    [[ $via =~ ^(direct|transaction|session)$ ]] || usage "VIA takes direct, transaction and/or session"
done

PGBOUNCER=/usr/sbin/pgbouncer
. bench/lib/throwaway_app.sh
require_tools psql python3
if [[ $VIA != direct && ! -x $PGBOUNCER ]]; then
    echo "$PGBOUNCER is required (apt-get install -y pgbouncer)" >&2
    exit 1
fi
build_app -p supervisor --bin supervisor
SUPERVISOR="$BIN/supervisor"

# The versions every run must find applied once each, from the migration files' names (V1__name.sql).
EXPECTED_HISTORY="$(find migrations -name 'V*__*.sql' -printf '%f\n' | sed -E 's/^V([0-9]+)__.*/\1:1/' | sort -n |
    paste -sd' ')"
[ -n "$EXPECTED_HISTORY" ] || { echo "no migrations found in migrations/" >&2; exit 1; }

# ---- stopping what the runs start --------------------------------------------------------------------------------
# The measuring program writes each supervisor's PID here and stops them itself; should the script be interrupted
# mid-run, the cleanup ends what is left: each supervisor named there that still runs, and its children.
REPLICA_PIDS="$WORK/replicas.pids"
POOLER_PIDS=()
stop_leftovers() {
    local pid child
    if [ -s "$REPLICA_PIDS" ]; then
        while read -r pid; do
            [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = supervisor ] || continue
            for child in $(pgrep -P "$pid" || true); do kill -KILL "$child" 2>/dev/null || true; done
            kill -KILL "$pid" 2>/dev/null || true
        done <"$REPLICA_PIDS"
    fi
    for pid in "${POOLER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
CLEANUP_HOOKS+=(stop_leftovers)

# ---- the database and the poolers --------------------------------------------------------------------------------
start_throwaway_db
# The cluster's superuser password stays in these variables: no line below prints it.
read -r DB_PORT DB_PASSWORD <<<"$(python3 -c 'import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(u.port, u.password)' "$DATABASE_URL")"
declare -A VIA_PORT=([direct]="$DB_PORT")
url_of() { # VIA DATABASE
    echo "postgres://postgres:$DB_PASSWORD@127.0.0.1:${VIA_PORT[$1]}/$2?sslmode=disable"
}
sql() { # DATABASE SQL
    PGPASSWORD="$DB_PASSWORD" psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$DB_PORT" -U postgres -d "$1" -c "$2"
}

# PgBouncer as the tests run it (testkit/src/pgbouncer.rs): every database of the cluster, SCRAM to the client and
# the server, 20 server connections per database. As root it switches to the cluster's user (it refuses root).
start_pgbouncer() { # MODE
    local mode=$1 dir="$WORK/pgbouncer-$1" port pid user_args=()
    port="$(free_port)"
    mkdir "$dir"
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$DB_PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = $mode
logfile = $dir/pgbouncer.log
max_client_conn = 200
default_pool_size = 20
EOF
    (umask 077 && echo "\"postgres\" \"$DB_PASSWORD\"" >"$dir/userlist.txt")
    if [ "$(id -u)" = 0 ]; then
        local user=postgres
        id "$user" >/dev/null 2>&1 || user=nobody
        chmod 711 "$WORK"
        chown -R "$user" "$dir"
        user_args=(-u "$user")
    fi
    "$PGBOUNCER" "${user_args[@]}" "$dir/pgbouncer.ini" </dev/null >/dev/null 2>&1 &
    pid=$!
    POOLER_PIDS+=("$pid")
    for _ in $(seq 100); do
        if (exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            VIA_PORT[$mode]=$port
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "pgbouncer ($mode mode) did not start:" >&2
    cat "$dir/pgbouncer.log" >&2 || true
    exit 1
}
for via in $VIA; do [ "$via" = direct ] || start_pgbouncer "$via"; done

# ---- one run -----------------------------------------------------------------------------------------------------
# Launches COUNT supervisors (ORDER=together: all at once; ORDER=serial: each once the previous one is ready),
# polls every /readyz every 20 ms (each request bounded by 1 s, the whole run by READY_WAIT), makes the apps'
# database calls, stops them all (SIGTERM, SIGKILL after 20 s) and prints "ok ALL_READY_MS FIRST_READY_MS
# LAST_APP_STARTED_MS APP_CALLS_ANSWERED APP_CALLS_MADE REPLICAS_THAT_MIGRATED APP_CALLS_OTHERWISE" on one line,
# or "failed REASON" (the replica's last log lines go to stderr).
cat >"$WORK/run.py" <<'EOF'
import collections, glob, http.client, json, os, secrets, signal, socket, subprocess, sys, threading, time
from datetime import datetime

APP_CALLS = 6  # per replica, half /health, half /api/auth/me

url, count, order = os.environ["RUN_URL"], int(os.environ["COUNT"]), os.environ["ORDER"]
supervisor, logs, pids_file = os.environ["SUPERVISOR"], os.environ["LOG_DIR"], os.environ["PIDS_FILE"]
ready_wait = float(os.environ["READY_WAIT"])

def free_ports(n):
    # Held open together, so that no two are the same; the app binds 0.0.0.0, so check there.
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("0.0.0.0", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports

ports = free_ports(2 * count)
replicas = [{"port": ports[2 * i], "health": ports[2 * i + 1], "log": f"{logs}/replica-{i + 1}.log"}
            for i in range(count)]

def get(port, path, headers={}, timeout=1):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", path, headers=headers)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None

def launch(i):
    r = replicas[i]
    env = dict(os.environ, DATABASE_URL=f"{url}&application_name=cold-start-{i + 1}", PORT=str(r["port"]),
               HEALTH_ADDR=f"127.0.0.1:{r['health']}", RUST_LOG="info", LOG_FORMAT="json",
               MIGRATION_LOCK_WAIT=f"{int(ready_wait)}s", DB_WAIT=f"{int(ready_wait)}s")
    for name in ("RUN_URL", "COUNT", "ORDER", "SUPERVISOR", "LOG_DIR", "PIDS_FILE", "READY_WAIT", "DATABASE_URL_FILE"):
        env.pop(name, None)
    with open(r["log"], "wb") as log:
        r["process"] = subprocess.Popen([supervisor], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    with open(pids_file, "a") as f:
        f.write(f"{r['process'].pid}\n")

class Failed(Exception):
    pass

def wait_ready(indices, deadline):
    pending = list(indices)
    while pending:
        for i in list(pending):
            r = replicas[i]
            if get(r["health"], "/readyz") == 200:
                r["ready"] = time.monotonic()
                pending.remove(i)
            elif r["process"].poll() is not None:
                raise Failed(f"replica {i + 1} exited with {r['process'].returncode} before it was ready", r)
        if pending:
            if time.monotonic() >= deadline:
                raise Failed(f"replica {pending[0] + 1} not ready within {ready_wait:.0f} s", replicas[pending[0]])
            time.sleep(0.02)

def children(pid):
    found = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as f:
                found += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return found

def stop_all():
    started = [r for r in replicas if "process" in r]
    stragglers = {}
    for r in started:
        stragglers[r["process"].pid] = children(r["process"].pid)
        if r["process"].poll() is None:
            r["process"].send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for r in started:
        p = r["process"]
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for pid in stragglers[p.pid] + children(p.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.kill()
            p.wait()
    open(pids_file, "w").close()

try:
    began, began_wall = time.monotonic(), time.time()
    deadline = began + ready_wait
    if order == "together":
        for i in range(count):
            launch(i)
        wait_ready(range(count), deadline)
    else:
        for i in range(count):
            launch(i)
            wait_ready([i], deadline)
    ready = [r["ready"] - began for r in replicas]
    # The app's own database work, all replicas at once: its /health (SELECT 1 through its pool) answers 200,
    # and /api/auth/me with a well-formed unknown token 401 once the sessions table answered (503: it did not).
    def app_calls(r):
        unknown = {"Authorization": "Bearer " + secrets.token_hex(32)}
        r["calls"] = [("/health", 200, get(r["port"], "/health", timeout=5)) for _ in range(APP_CALLS // 2)] + \
                     [("/api/auth/me", 401, get(r["port"], "/api/auth/me", unknown, timeout=5))
                      for _ in range(APP_CALLS // 2)]
    callers = [threading.Thread(target=app_calls, args=(r,)) for r in replicas]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    calls = [call for r in replicas for call in r["calls"]]
    app_ok = sum(1 for _, expected, status in calls if status == expected)
    # What the others got, e.g. "/api/auth/me:500x2" (None: no answer within 5 s).
    wrong = collections.Counter(f"{path}:{status}" for path, expected, status in calls if status != expected)
    app_wrong = ",".join(f"{what}x{n}" for what, n in sorted(wrong.items())) or "-"
    stop_all()
    # From the replicas' logs: which applied migrations, and when each started its app (so that the figures
    # show how much of "ready" is the supervisor's next child check, every 250 ms, after the app listens).
    migrated, child_started = 0, []
    for r in replicas:
        events = [json.loads(line) for line in open(r["log"], errors="replace") if line.startswith("{")]
        migrated += any(e.get("message") == "migration applied" for e in events)
        child_started += [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp() - began_wall
                          for e in events if e.get("message") == "child started"][:1]
    last_child = f"{max(child_started) * 1000:.0f}" if len(child_started) == count else "-"
    print(f"ok {max(ready) * 1000:.0f} {min(ready) * 1000:.0f} {last_child}",
          f"{app_ok} {APP_CALLS * count} {migrated} {app_wrong}")
except Failed as failure:
    reason, replica = failure.args
    stop_all()
    with open(replica["log"], errors="replace") as f:
        sys.stderr.write("".join(f.readlines()[-10:]))
    print(f"failed {reason}")
except BaseException:
    stop_all()
    raise
EOF

# ---- the runs ----------------------------------------------------------------------------------------------------
RESULTS="$WORK/results"
: >"$RESULTS"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
pooler_version=""
[[ $VIA == direct ]] || pooler_version="; $("$PGBOUNCER" --version | head -n1)"
echo "machine: $(nproc) cores; $("$SUPERVISOR" --version)$pooler_version"
echo "migrations: $(echo "$EXPECTED_HISTORY" | sed -E 's/:1//g; s/(^| )/\1V/g');" \
    "$RUNS runs of each configuration, interleaved"
echo
printf '%-4s %-12s %-3s %-9s %-6s %9s %9s %9s %-22s %-9s %s\n' \
    run via N order load1 "all ready" "first" "last app" "history (version:count)" "migrated" "app db calls"
# The configurations interleave within each round, so that a change in the machine's load falls on all of them.
run_id=0
for run in $(seq "$RUNS"); do
    for via in $VIA; do
        for n in $COUNTS; do
            for order in together serial; do
                # One replica started alone is the same start either way.
                [ "$n" -gt 1 ] || [ "$order" = together ] || continue
                run_id=$((run_id + 1))
                db="cold_start_$run_id"
                sql postgres "CREATE DATABASE $db" >/dev/null
                logs="${OUT_DIR:-$WORK}/logs/run$run-$via-$n-$order"
                mkdir -p "$logs"
                load1="$(cut -d' ' -f1 /proc/loadavg)"
                outcome="$(RUN_URL="$(url_of "$via" "$db")" COUNT="$n" ORDER="$order" SUPERVISOR="$SUPERVISOR" \
                    LOG_DIR="$logs" PIDS_FILE="$REPLICA_PIDS" READY_WAIT="$READY_WAIT" python3 "$WORK/run.py")"
                history="$(sql "$db" "SELECT version || ':' || count(*) FROM refinery_schema_history
                                      GROUP BY version ORDER BY version" 2>/dev/null | paste -sd' ' || true)"
                [ -n "$history" ] || history=none
                if [ "$history" = "$EXPECTED_HISTORY" ]; then history_check=ok; else history_check=WRONG; fi
                sql postgres "DROP DATABASE $db WITH (FORCE)" >/dev/null
                read -r status all first last_child app_ok app_asked migrated app_wrong <<<"$outcome"
                if [ "$status" = ok ]; then
                    app_calls="$app_ok of $app_asked"
                    [ "$app_wrong" = - ] || app_calls+=" (otherwise $app_wrong)"
                    printf '%-4s %-12s %-3s %-9s %-6s %6s ms %6s ms %6s ms %-22s %-9s %s\n' \
                        "$run" "$via" "$n" "$order" "$load1" "$all" "$first" "$last_child" \
                        "$history_check ($history)" "$migrated of $n" "$app_calls"
                else
                    printf '%-4s %-12s %-3s %-9s %-6s %s; history %s (%s)\n' "$run" "$via" "$n" "$order" "$load1" \
                        "$outcome" "$history_check" "$history"
                fi
                echo "$via $n $order $load1 $history_check $outcome" >>"$RESULTS"
            done
        done
    done
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$OUT_DIR" ]; then
    for via in $VIA; do
        [ "$via" = direct ] || cp "$WORK/pgbouncer-$via/pgbouncer.log" "$OUT_DIR/pgbouncer-$via.log"
    done
    echo "replica and PgBouncer logs: $OUT_DIR"
fi

# ---- the figures -------------------------------------------------------------------------------------------------
echo
VIA="$VIA" COUNTS="$COUNTS" python3 - "$RESULTS" <<'EOF'
import os, statistics, sys

FIELDS = "via n order load1 history status all first last_app app_ok app_asked migrated app_wrong".split()
rows = [dict(zip(FIELDS, line.split(maxsplit=len(FIELDS) - 1))) for line in open(sys.argv[1])]
def runs(via, n, order):
    return [r for r in rows if r["via"] == via and r["n"] == str(n) and r["order"] == order]
def ms(selected, field):
    return [int(r[field]) for r in selected if r["status"] == "ok" and r[field] != "-"]
def seconds(values):
    return f"{statistics.median(values) / 1000:.2f} / {max(values) / 1000:.2f} s" if values else "-"

header = ("via", "N", "all ready at once: median / max", "first ready: median", "last app started: median",
          "one after another: median / max", "at once / one after another", "history once each",
          "migrated by one", "app db calls answered", "load (1 min)")
print("| " + " | ".join(header) + " |")
print("|" + "|".join("---" for _ in header) + "|")
for via in os.environ["VIA"].split():
    for n in map(int, os.environ["COUNTS"].split()):
        together, serial = runs(via, n, "together"), runs(via, n, "serial")
        both = together + serial
        ok = [r for r in both if r["status"] == "ok"]
        at_once, after = ms(together, "all"), ms(serial, "all")
        first, last_app = ms(together, "first"), ms(together, "last_app")
        loads = sorted(float(r["load1"]) for r in both)
        print("| " + " | ".join([
            via, str(n), seconds(at_once),
            f"{statistics.median(first) / 1000:.2f} s" if first else "-",
            f"{statistics.median(last_app) / 1000:.2f} s" if last_app else "-",
            seconds(after) if n > 1 else "(the same)",
            f"{statistics.median(at_once) / statistics.median(after):.2f}" if at_once and after else "-",
            f"{sum(r['history'] == 'ok' for r in both)} of {len(both)}",
            f"{sum(r['migrated'] == '1' for r in ok)} of {len(both)}",
            f"{sum(int(r['app_ok']) for r in ok)} of {sum(int(r['app_asked']) for r in ok)}",
            f"{loads[0]:.1f}-{loads[-1]:.1f}",
        ]) + " |")
failed = [line.split(maxsplit=6) for line in open(sys.argv[1]) if line.split()[5] != "ok"]
if failed:
    print(f"\n{len(failed)} runs failed: " + "; ".join(f"{f[0]} N={f[1]} {f[2]}: {f[6].strip()}" for f in failed))
EOF
