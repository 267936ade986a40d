#!/usr/bin/env bash
# The supervisor beside `tini -g` (Debian's /usr/bin/tini) as the init of a container, measured in one run:
# memory with the child running, exec to child started (schema current), signal-forwarding latency, SIGINT to
# `bash -c 'sleep 1000; true'` until exit, and child exit until init exit. Medians over RUNS (default 20).
#
#   bench/supervisor.sh [RUNS]
#
# Needs: cargo, PostgreSQL's initdb/pg_ctl (pg_config --bindir, else the highest /usr/lib/postgresql/*/bin),
# tini, perl. As root, PostgreSQL runs as the `postgres` user (or `nobody`).
set -euo pipefail

runs=${1:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

command -v tini >/dev/null || { echo "tini not found (apt-get install tini)" >&2; exit 1; }

echo "building the release supervisor..." >&2
cargo build --release -q -p supervisor
supervisor=$root/target/release/supervisor

# A throwaway PostgreSQL cluster, removed on exit.
pgbin=$(pg_config --bindir 2>/dev/null || true)
if [[ ! -x ${pgbin:-}/initdb ]]; then
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
work=$(mktemp -d -t supervisor-bench-XXXXXX)
chmod 755 "$work"
as_server=()
if [[ $(id -u) == 0 ]]; then
    server_user=postgres
    id "$server_user" >/dev/null 2>&1 || server_user=nobody
    chown "$server_user" "$work"
    as_server=(runuser -u "$server_user" --)
fi
free_port() {
    perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0")->sockport'
}
port=$(free_port)
cleanup() {
    "${as_server[@]}" "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"${as_server[@]}" "$pgbin/initdb" -D "$work/data" -U postgres --auth=trust -N >/dev/null
"${as_server[@]}" "$pgbin/pg_ctl" -D "$work/data" -l "$work/log" -w \
    -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
"${as_server[@]}" "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE bench" >/dev/null

export DATABASE_URL="postgres://postgres@127.0.0.1:$port/bench?sslmode=disable"
export HEALTH_ADDR="127.0.0.1:$(free_port)"
export CHILD_CHECK=none
# The schema is current before the measured starts, as on every start but the first.
"$supervisor" migrate 2>/dev/null

echo "measuring the supervisor ($runs runs each)..." >&2
ours=$(perl bench/supervisor-measure.pl "$runs" "$supervisor" --)
echo "measuring tini -g ($runs runs each)..." >&2
theirs=$(perl bench/supervisor-measure.pl "$runs" tini -g --)

value() { awk -v k="$1" '$1 == k { print $2 }' <<<"$2"; }
row() { printf '| %-48s | %10s | %8s | %-22s |\n' "$1" "$(value "$2" "$ours")" "$(value "$2" "$theirs")" "$3"; }
echo
echo "supervisor $("$supervisor" --version | awk '{print $2}') vs $(tini --version | head -1), medians of $runs runs, $(nproc) CPUs"
echo
printf '| %-48s | %10s | %8s | %-22s |\n' "measure" "supervisor" "tini -g" "goal"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..50})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..24})"
row "RSS with the child running (MiB)" rss_mib "<= 4 MiB"
row "exec to child started, schema current (ms)" startup_ms "< 50 ms"
row "signal forwarding, kill to handler (ms)" forward_ms "within 1 ms of tini"
row "SIGINT to bash -c 'sleep 1000; true' exit (ms)" sigint_ms "< 10 ms"
row "child exit to init exit (ms)" exit_ms "< 5 ms"
