# shellcheck shell=bash
# Sourced by the bench scripts that run the app against a throwaway PostgreSQL from testkit
# (app/examples/bench_db.rs). Needs BIN (the release build directory) set before it is sourced.
#
# Sets WORK (a temporary directory) and installs the EXIT trap, which runs every function named in
# CLEANUP_HOOKS (in order, first), stops APP_PID if set, stops bench_db and deletes WORK.
# start_throwaway_db sets DB_PID and DATABASE_URL; free_port prints a free local TCP port.

WORK="$(mktemp -d)"
APP_PID=""
DB_PID=""
# A script adds its own steps with CLEANUP_HOOKS+=(function_name): they run before the app is stopped.
CLEANUP_HOOKS=()
cleanup() {
    local hook
    for hook in "${CLEANUP_HOOKS[@]}"; do "$hook"; done
    [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null && wait "$APP_PID" 2>/dev/null || true
    # Closing its standard input stops bench_db and deletes its cluster.
    exec 3>&- 2>/dev/null || true
    [ -n "$DB_PID" ] && wait "$DB_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Starts bench_db with its standard input on fd 3 of this shell (so it lives until the script exits) and
# waits up to 60 s for the database URL on its first line of output. Call it in the script's own shell,
# not in $(...): fd 3 and the variables it sets must outlive the call.
start_throwaway_db() {
    mkfifo "$WORK/db.in"
    "$BIN/examples/bench_db" <"$WORK/db.in" >"$WORK/db.out" 2>"$WORK/db.log" &
    DB_PID=$!
    exec 3>"$WORK/db.in"
    for _ in $(seq 600); do [ -s "$WORK/db.out" ] && break; sleep 0.1; done
    DATABASE_URL="$(head -n1 "$WORK/db.out")"
    [ -n "$DATABASE_URL" ] || { echo "the database did not start:" >&2; cat "$WORK/db.log" >&2; exit 1; }
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
