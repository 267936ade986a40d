#!/usr/bin/env bash
# The supervisor's health listener under wrk beside a raw hyper hello-world, plus the database queries per
# second the health check runs meanwhile (pg_stat_statements) and each server's resident memory.
#
#   bench/health.sh        (needs wrk: apt-get install -y wrk; DURATION=10s CONNECTIONS=32 THREADS=1 ROUNDS=3)
#   bench/health.sh flood  (only the second part: FLOOD_CLIENTS=1200 FLOOD_SECONDS=20)
#
# Both servers are release builds on a current-thread runtime (as the supervisor runs); the health listener
# is driven through the library with a running child and a throwaway PostgreSQL (supervisor/examples/).
#
# Second part: how long a fresh `probe` and a fresh GET /livez wait while FLOOD_CLIENTS clients hold
# connections (supervisor/examples/health_flood.rs: keep-alive requests every 3 s, headers that never end,
# silent connections, each reconnecting when closed), beside the same with no flood. HEALTH_SERVER=PATH runs
# another build of supervisor/examples/health_server.rs (e.g. an older commit's, for a before/after).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-all}"
case "$MODE" in all | flood) ;; *) echo "usage: bench/health.sh [flood]" >&2; exit 64 ;; esac
FLOOD_CLIENTS="${FLOOD_CLIENTS:-1200}"
FLOOD_SECONDS="${FLOOD_SECONDS:-20}"

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-1}"
ROUNDS="${ROUNDS:-3}"
PSQL_BIN="${PSQL_BIN:-/usr/lib/postgresql/15/bin/psql}"
[ "$MODE" = flood ] || command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 1; }
[ -x "$PSQL_BIN" ] || { echo "psql not found at $PSQL_BIN (set PSQL_BIN)" >&2; exit 1; }

cargo build --release -p supervisor --bin supervisor --example hello --example health_server --example health_flood --quiet
cargo build --release -p probe --bin probe --quiet
EXAMPLES=target/release/examples
HEALTH_SERVER="${HEALTH_SERVER:-$EXAMPLES/health_server}"

WORK="$(mktemp -d)"
HELLO_PID=""
HELLO2_PID=""
HEALTH_PID=""
SUPERVISOR_PID=""
cleanup() {
    [ -n "$HELLO_PID" ] && kill "$HELLO_PID" 2>/dev/null || true
    [ -n "$HELLO2_PID" ] && kill "$HELLO2_PID" 2>/dev/null || true
    [ -n "$SUPERVISOR_PID" ] && kill "$SUPERVISOR_PID" 2>/dev/null && wait "$SUPERVISOR_PID" 2>/dev/null || true
    # Closing its standard input stops the health server, its child and its PostgreSQL cluster.
    exec 3>&- 2>/dev/null || true
    [ -n "$HEALTH_PID" ] && wait "$HEALTH_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Waits (bounded) for the first line a server prints.
first_line() {
    local file=$1
    for _ in $(seq 600); do
        if [ -s "$file" ] && [ "$(wc -l <"$file")" -ge 1 ]; then
            head -n1 "$file"
            return 0
        fi
        sleep 0.1
    done
    echo "server did not start; its log:" >&2
    cat "$WORK"/*.log >&2 || true
    return 1
}

"$EXAMPLES/hello" 127.0.0.1:0 >"$WORK/hello.out" 2>"$WORK/hello.log" &
HELLO_PID=$!
HELLO_ADDR="$(first_line "$WORK/hello.out")"
"$EXAMPLES/hello" 127.0.0.1:0 --timeout >"$WORK/hello2.out" 2>"$WORK/hello2.log" &
HELLO2_PID=$!
HELLO2_ADDR="$(first_line "$WORK/hello2.out")"

mkfifo "$WORK/health.in"
"$HEALTH_SERVER" 127.0.0.1:0 <"$WORK/health.in" >"$WORK/health.out" 2>"$WORK/health.log" &
HEALTH_PID=$!
exec 3>"$WORK/health.in"
read -r HEALTH_ADDR SOCKET_DIR PG_PORT DBNAME <<<"$(first_line "$WORK/health.out")"

psql_value() {
    "$PSQL_BIN" -X -A -t -q -h "$SOCKET_DIR" -p "$PG_PORT" -U postgres -d "$DBNAME" -c "$1"
}
health_queries() {
    psql_value "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query IN ('SELECT 1', 'SELECT \$1')"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU time (user + system) a process has used, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
# wrk's duration (10s, 2m) in seconds.
seconds() { local d=$1; case "$d" in *s) echo "${d%s}" ;; *m) echo $(( ${d%m} * 60 )) ;; *) echo "$d" ;; esac; }

for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$HEALTH_ADDR/readyz")" = 200 ] && break
    sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$HEALTH_ADDR/readyz")" = 200 ] \
    || { echo "the health listener never became ready" >&2; cat "$WORK/health.log" >&2; exit 1; }

HEALTH_RSS_IDLE="$(rss_kib "$HEALTH_PID")"
SECS="$(seconds "$DURATION")"

flood() {
    echo "fresh callers, one after the other for ${FLOOD_SECONDS}s each run ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)):"
    for clients in 0 "$FLOOD_CLIENTS"; do
        echo "--- $clients clients holding connections"
        "$EXAMPLES/health_flood" "$HEALTH_ADDR" "$HEALTH_PID" "$clients" target/release/probe "$FLOOD_SECONDS"
    done
}
if [ "$MODE" = flood ]; then
    flood
    exit 0
fi

# Each round runs every target once, back to back, so that load from other processes hits all of them alike;
# the table shows each target's median round.
NAMES=("hyper hello-world" "hello + read timeout" "health /livez" "health /readyz" "health /health")
URLS=("http://$HELLO_ADDR/" "http://$HELLO2_ADDR/" "http://$HEALTH_ADDR/livez" "http://$HEALTH_ADDR/readyz" "http://$HEALTH_ADDR/health")
PIDS=("$HELLO_PID" "$HELLO2_PID" "$HEALTH_PID" "$HEALTH_PID" "$HEALTH_PID")
# wrk prints latencies with units; in microseconds for sorting.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /ms$/) n *= 1000; else if (v ~ /[0-9]s$/) n *= 1000000; printf "%.0f", n }'; }
: >"$WORK/results"
for round in $(seq "$ROUNDS"); do
    for i in "${!NAMES[@]}"; do
        before="$(health_queries)"
        cpu_before="$(cpu_ticks "${PIDS[$i]}")"
        out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${URLS[$i]}")"
        after="$(health_queries)"
        cpu_after="$(cpu_ticks "${PIDS[$i]}")"
        rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
        p50="$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
        p99="$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
        errors="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
        requests="$(awk '/requests in/ {print $1}' <<<"$out")"
        cpu_us="$(awk -v t="$((cpu_after - cpu_before))" -v u="$TICK_US" -v n="$requests" 'BEGIN { printf "%.2f", t * u / n }')"
        echo "$i $round $rps $p50 $p99 ${errors:-0} $((after - before)) $cpu_us" >>"$WORK/results"
    done
done

printf '%-21s %11s %9s %9s %8s %13s %9s %14s\n' target requests/s p50 p99 non-2xx "db queries/s" "vs hello" "CPU us/request"
BASE_RPS=""
for i in "${!NAMES[@]}"; do
    # Median round by requests/s; queries counted over all rounds.
    read -r rps p50 p99 errors < <(awk -v i="$i" '$1 == i {print $3, $4, $5, $6}' "$WORK/results" | sort -n | awk '{a[NR] = $0} END {print a[int((NR + 1) / 2)]}')
    # CPU per request: the median round's figure, sorted on its own (it depends little on other load).
    cpu="$(awk -v i="$i" '$1 == i {print $8}' "$WORK/results" | sort -n | awk '{a[NR] = $0} END {print a[int((NR + 1) / 2)]}')"
    queries="$(awk -v i="$i" '$1 == i {q += $7} END {print q}' "$WORK/results")"
    qps="$(awk -v q="$queries" -v s="$SECS" -v r="$ROUNDS" 'BEGIN { printf "%.2f", q / (s * r) }')"
    [ -z "$BASE_RPS" ] && BASE_RPS="$rps"
    printf '%-21s %11.0f %7sus %7sus %8s %13s %8s%% %14s\n' "${NAMES[$i]}" "$rps" "$p50" "$p99" "$errors" "$qps" \
        "$(awk -v r="$rps" -v b="$BASE_RPS" 'BEGIN { printf "%d", 100 * r / b }')" "$cpu"
done
# The real supervisor binary (migrations, a `sleep` child, the listener) against the same cluster, over its
# unix socket (trust authentication): its memory with the child running.
SUPERVISOR_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
DATABASE_URL="postgres://postgres@localhost:$PG_PORT/$DBNAME?host=$SOCKET_DIR&sslmode=disable" \
    HEALTH_ADDR="127.0.0.1:$SUPERVISOR_PORT" target/release/supervisor -- sleep 1000000 \
    >"$WORK/supervisor.out" 2>"$WORK/supervisor.log" &
SUPERVISOR_PID=$!
SUPERVISOR_MEMORY="did not become ready (see its log)"
for _ in $(seq 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SUPERVISOR_PORT/readyz")" = 200 ]; then
        sleep 1
        SUPERVISOR_MEMORY="RSS $(rss_kib "$SUPERVISOR_PID") KiB (anonymous $(awk '/^RssAnon/ {print $2}' "/proc/$SUPERVISOR_PID/status") KiB, PSS $(awk '/^Pss:/ {print $2}' "/proc/$SUPERVISOR_PID/smaps_rollup") KiB)"
        break
    fi
    sleep 0.1
done

echo
echo "supervisor binary with its child running: $SUPERVISOR_MEMORY"
echo "resident memory: hello-world $(rss_kib "$HELLO_PID") KiB; health server idle ${HEALTH_RSS_IDLE} KiB, after load $(rss_kib "$HEALTH_PID") KiB"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, median of $ROUNDS rounds, on $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
flood
