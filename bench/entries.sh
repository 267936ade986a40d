#!/usr/bin/env bash
# Time entries with 100k entries for one user, each figure beside the tool users would use instead:
#   - GET /api/entries, the first page and a deep page (cursor at entry 90,000) of 100, under wrk,
#     beside pgbench running the same SELECT as a prepared statement (goal: the app >= 0.5 of pgbench),
#     and the session check with the first page's SELECT both prepared and unnamed (as the app sends them);
#   - a 10k-entry Toggl import through the API (first run, then the identical re-import), beside psql
#     \copy + INSERT of the same rows (goal < 1 s);
#   - a one-year summary by day in Europe/Berlin, under wrk, beside pgbench running the same aggregate
#     (goal < 100 ms).
#
#   bench/entries.sh       (needs wrk, pgbench, psql, curl, python3:
#                           apt-get install -y wrk postgresql-client; DURATION=10s CONNECTIONS=8)
#
# Release builds; a throwaway PostgreSQL from testkit (app/examples/bench_db.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-8}"

. bench/lib/throwaway_app.sh
require_tools wrk pgbench psql curl python3
build_app
start_throwaway_db
sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"; }

start_app
register bench@example.com "benchmark password"
TOKEN="$(login_token bench@example.com "benchmark password")"
AUTH="Authorization: Bearer $TOKEN"
USER_ID="$(sql "SELECT id FROM users WHERE email = 'bench@example.com'")"

# 100k entries, two every 30 minutes from 2023-01-01 (about 2.9 years): pairs share a date.
sql "INSERT INTO time_entries (user_id, source, external_id, date, duration, project, description)
     SELECT '$USER_ID', 'seed', 'seed-' || g,
            timestamptz '2023-01-01 00:00Z' + (g / 2) * interval '30 minutes',
            0.25, 'project ' || (g % 17), 'seeded entry ' || g
     FROM generate_series(1, 100000) g"
sql "VACUUM ANALYZE time_entries"

# Entry 90,000: its date and id for the SQL, and its cursor as the API encodes it (the date in
# microseconds as 16 hex digits, then the id's 32).
DEEP="$(sql "SELECT to_char(date AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || ' ' || id || ' ' ||
                    lpad(to_hex((extract(epoch FROM date) * 1000000)::bigint), 16, '0') || replace(id::text, '-', '')
             FROM time_entries WHERE user_id = '$USER_ID' ORDER BY date, id OFFSET 89999 LIMIT 1")"
read -r DEEP_DATE DEEP_ID CURSOR <<<"$DEEP"

COLUMNS_SQL="id, source, external_id, date, duration, project, description, created_at, updated_at"
echo "SELECT $COLUMNS_SQL FROM time_entries WHERE user_id = '$USER_ID' ORDER BY date, id LIMIT 101;" >"$WORK/first.sql"
echo "SELECT $COLUMNS_SQL FROM time_entries WHERE user_id = '$USER_ID' AND (date, id) > ('$DEEP_DATE', '$DEEP_ID') ORDER BY date, id LIMIT 101;" >"$WORK/deep.sql"
# What one list request costs the database: the session check every authenticated request runs
# (as app/src/auth.rs has it), then the page.
TOKEN_HASH="$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"
{
    echo "WITH live AS (SELECT user_id FROM sessions WHERE token_hash = '\\x$TOKEN_HASH'::bytea AND expires_at > now() AND absolute_expires_at > now()), touched AS (UPDATE sessions SET last_seen_at = now(), expires_at = LEAST(now() + make_interval(secs => 604800), absolute_expires_at) WHERE token_hash = '\\x$TOKEN_HASH'::bytea AND expires_at > now() AND last_seen_at < now() - interval '1 minute') SELECT u.id, u.email, u.created_at FROM live JOIN users u ON u.id = live.user_id;"
    cat "$WORK/first.sql"
} >"$WORK/request.sql"
sql "$(head -n1 "$WORK/request.sql")" | grep -q 'bench@example.com' || { echo "the session check finds no session" >&2; exit 1; }
SUMMARY_QUERY="from=2024-01-01T00:00:00Z&to=2025-01-01T00:00:00Z&tz=Europe/Berlin&group_by=day"
echo "SELECT to_char(k, 'YYYY-MM-DD') AS key, hours, entries FROM (SELECT (date AT TIME ZONE 'Europe/Berlin')::date AS k, sum(duration) AS hours, count(*) AS entries FROM time_entries WHERE user_id = '$USER_ID' AND date >= '2024-01-01T00:00:00Z' AND date < '2025-01-01T00:00:00Z' GROUP BY 1) AS g ORDER BY k;" >"$WORK/summary.sql"

# Sanity: the deep page through the API starts right after entry 90,000.
FIRST_DEEP="$(curl -fsS -H "$AUTH" "$BASE/api/entries?limit=1&cursor=$CURSOR" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"][0]["id"])')"
EXPECTED_DEEP="$(sql "SELECT id FROM time_entries WHERE user_id = '$USER_ID' ORDER BY date, id OFFSET 90000 LIMIT 1")"
[ "$FIRST_DEEP" = "$EXPECTED_DEEP" ] || { echo "deep page mismatch: $FIRST_DEEP != $EXPECTED_DEEP" >&2; exit 1; }

run_wrk() {
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -H "$AUTH" "$BASE$1" >"$WORK/wrk.out"
    wrk_figures "$WORK/wrk.out"
}
# run_pgbench FILE [MODE]: "tps average_latency_ms" from pgbench; MODE is prepared (the default: parsed and
# planned once per connection) or extended (unnamed statements, parsed and planned every time, as the app
# sends its statements so that transaction pooling can carry them).
run_pgbench() {
    pgbench -n -M "${2:-prepared}" -c "$CONNECTIONS" -j 2 -T "${DURATION%s}" -f "$1" "$DATABASE_URL" >"$WORK/pgbench.out" 2>&1
    awk '/^tps/ { tps = $3 } /latency average/ { lat = $4 } END { printf "%s %s\n", tps, lat }' "$WORK/pgbench.out"
}
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
row() { printf '%-46s %12s %10s %10s %8s\n' "$@"; }

echo "100k entries for one user; $CONNECTIONS connections, $DURATION per run, $(nproc) cores"
echo
row "list, 100 entries per page" "per second" "p50" "p99" "non-2xx"
for page in first deep; do
    if [ "$page" = first ]; then
        path="/api/entries?limit=100"
    else
        path="/api/entries?limit=100&cursor=$CURSOR"
    fi
    read -r rps p50 p99 bad <<<"$(run_wrk "$path")"
    read -r tps lat <<<"$(run_pgbench "$WORK/$page.sql")"
    row "GET $page page (app under wrk)" "$rps" "$p50" "$p99" "$bad"
    row "  the same SELECT (pgbench -M prepared)" "$tps" "${lat}ms" "" ""
    row "  app / pgbench" "$(ratio "$rps" "$tps")" "" "" ""
    if [ "$page" = first ]; then
        read -r tps lat <<<"$(run_pgbench "$WORK/request.sql")"
        row "  session check + SELECT (pgbench, both)" "$tps" "${lat}ms" "" ""
        row "  app / pgbench (both)" "$(ratio "$rps" "$tps")" "" "" ""
        read -r tps lat <<<"$(run_pgbench "$WORK/request.sql" extended)"
        row "  both, unnamed (pgbench -M extended)" "$tps" "${lat}ms" "" ""
        row "  app / pgbench (both, unnamed)" "$(ratio "$rps" "$tps")" "" "" ""
    fi
done

# 10k Toggl entries; the same rows as CSV for psql \copy.
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
entries = [{"id": 5_000_000 + i,
            "start": f"2022-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            "duration": 60 * (1 + i % 240), "description": f"imported entry {i} - ünïcode",
            "project_name": f"Projekt {i % 23}", "workspace_id": 1, "tags": ["bench"]}
           for i in range(10_000)]
json.dump(entries, open(f"{work}/toggl.json", "w"))
with open(f"{work}/copy.csv", "w") as f:
    for e in entries:
        f.write(f"{e['id']},{e['start']},{e['duration'] / 3600},{e['project_name']},{e['description']}\n")
PY
import_once() {
    curl -sS -o "$WORK/import.out" -w '%{http_code} %{time_total}' -H "$AUTH" \
        -H 'Content-Type: application/json' --data-binary "@$WORK/toggl.json" "$BASE/api/import/toggl"
}
read -r status1 t1 <<<"$(import_once)"
result1="$(cat "$WORK/import.out")"
read -r status2 t2 <<<"$(import_once)"
result2="$(cat "$WORK/import.out")"
copy_start="$(date +%s.%N)"
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" >/dev/null \
    -c "CREATE TEMP TABLE staged (external_id text, date timestamptz, duration float8, project text, description text)" \
    -c "\\copy staged FROM '$WORK/copy.csv' WITH (FORMAT csv)" \
    -c "INSERT INTO time_entries (user_id, source, external_id, date, duration, project, description)
        SELECT '$USER_ID', 'copy', external_id, date, duration, project, description FROM staged"
copy_end="$(date +%s.%N)"
echo
row "import of 10k Toggl entries" "seconds" "HTTP" "" ""
row "POST /api/import/toggl, first" "$t1" "$status1" "" ""
echo "      $result1"
row "POST /api/import/toggl, identical again" "$t2" "$status2" "" ""
echo "      $result2"
row "  psql \\copy + INSERT of the same rows" "$(python3 -c "print(f'{$copy_end - $copy_start:.6f}')")" "" "" ""

echo
row "one-year summary by day, Europe/Berlin" "per second" "p50" "p99" "non-2xx"
read -r rps p50 p99 bad <<<"$(run_wrk "/api/summary?$SUMMARY_QUERY")"
read -r tps lat <<<"$(run_pgbench "$WORK/summary.sql")"
row "GET /api/summary (app under wrk)" "$rps" "$p50" "$p99" "$bad"
row "  the same aggregate (pgbench -M prepared)" "$tps" "${lat}ms" "" ""
row "  app / pgbench" "$(ratio "$rps" "$tps")" "" "" ""
single="$(curl -sS -o "$WORK/summary.out" -w '%{time_total}' -H "$AUTH" "$BASE/api/summary?$SUMMARY_QUERY")"
days="$(python3 -c "import json; print(len(json.load(open('$WORK/summary.out'))))")"
row "one request alone (curl time_total, s; $days days)" "$single" "" "" ""
