# shellcheck shell=bash
# Sourced by the bench scripts that run the app (release build) against a throwaway PostgreSQL from testkit
# (app/examples/bench_db.rs), from the repository's root.
#
# Sets BIN (the release build directory) and WORK (a temporary directory), and installs the EXIT trap,
# which runs every function named in CLEANUP_HOOKS (in order, first), stops the app if it runs, stops
# bench_db and deletes WORK. build_app builds the app and bench_db; start_throwaway_db sets DB_PID and
# DATABASE_URL; start_app starts the app on PORT (picked on its first call; BASE is its URL) and sets
# APP_PID; stop_app stops it; register and login_token make an account and a session; wrk_figures reads
# wrk's output; free_port prints a free local TCP port.

BIN=target/release
WORK="$(mktemp -d)"
APP_PID=""
DB_PID=""
PORT=""
BASE=""
# A script adds its own steps with CLEANUP_HOOKS+=(function_name): they run before the app is stopped.
CLEANUP_HOOKS=()
cleanup() {
    local hook
    for hook in "${CLEANUP_HOOKS[@]}"; do "$hook"; done
    stop_app
    # Closing its standard input stops bench_db and deletes its cluster.
    exec 3>&- 2>/dev/null || true
    [ -n "$DB_PID" ] && wait "$DB_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# require_tools TOOL...: ends the script unless every TOOL is on the PATH.
require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
    done
}

# build_app [CARGO_ARGS...]: the release build of the app and bench_db (and what CARGO_ARGS add).
build_app() {
    cargo build --release -p app --bin app --example bench_db "$@" --quiet
}

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

# start_app [NAME=VALUE...]: starts the app on the throwaway database (RUST_LOG=warn, its log in
# $WORK/app.log) with these settings added, and waits up to 30 s for its /livez. Call it in the script's
# own shell, as start_throwaway_db.
start_app() {
    if [ -z "$PORT" ]; then
        PORT="$(free_port)"
        BASE="http://127.0.0.1:$PORT"
    fi
    env DATABASE_URL="$DATABASE_URL" PORT="$PORT" RUST_LOG=warn "$@" "$BIN/app" 2>>"$WORK/app.log" &
    APP_PID=$!
    for _ in $(seq 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/livez")" = 200 ] && return 0
        sleep 0.1
    done
    echo "the app did not start:" >&2
    cat "$WORK/app.log" >&2
    exit 1
}

stop_app() {
    if [ -n "$APP_PID" ]; then
        kill "$APP_PID" 2>/dev/null || true
        wait "$APP_PID" 2>/dev/null || true
        APP_PID=""
    fi
}

# register EMAIL PASSWORD: creates the account (the script ends if that fails).
register() {
    curl -fsS -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"$2\"}" "$BASE/api/auth/register"
}

# login_token EMAIL PASSWORD: prints the session token of a login.
login_token() {
    curl -fsS -H 'Content-Type: application/json' -d "{\"email\":\"$1\",\"password\":\"$2\"}" \
        "$BASE/api/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

# wrk_figures FILE: "requests/s p50 p99 non2xx" from wrk --latency output.
wrk_figures() {
    awk '
        /Requests\/sec:/ { rps = $2 }
        /^ +50%/ { p50 = $2 }
        /^ +99%/ { p99 = $2 }
        /Non-2xx or 3xx responses:/ { bad = $5 }
        END { printf "%s %s %s %s\n", rps, p50, p99, (bad == "" ? 0 : bad) }
    ' "$1"
}
