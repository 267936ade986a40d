#!/usr/bin/env bash
# Accounts under load: logins per second at full load beside the argon2id ceiling (the app's own hasher
# in-process, and the reference C implementation's `argon2` CLI), and the latency of GET /api/auth/me
# alone and while a login storm runs (goal: p99 < 50 ms), for HASH_CONCURRENCY = cores and cores - 1.
#
#   bench/app_auth.sh      (needs wrk and argon2: apt-get install -y wrk argon2;
#                           DURATION=10s LOGIN_CONNECTIONS=16 ME_CONNECTIONS=4)
#
# Release builds; a throwaway PostgreSQL from testkit (app/examples/bench_db.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
LOGIN_CONNECTIONS="${LOGIN_CONNECTIONS:-16}"
ME_CONNECTIONS="${ME_CONNECTIONS:-4}"
CORES="$(nproc)"

. bench/lib/throwaway_app.sh
require_tools wrk argon2 curl python3
build_app --example argon2_rate
start_throwaway_db

EMAIL="bench0@example.com"
PASSWORD="benchmark password"

# Logins spread over one account per connection: concurrent attempts on one account count
# against its limit of 5, which is the throttle working, not the hashing ceiling.
USERS="$LOGIN_CONNECTIONS"
cat >"$WORK/login.lua" <<EOF
local n = 0
request = function()
    n = n + 1
    local body = string.format('{"email":"bench%d@example.com","password":"$PASSWORD"}', n % $USERS)
    return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
EOF

row() { printf '%-52s %10s %10s %10s %8s\n' "$@"; }

# The ceiling: hashes per second with nothing else around them.
REF_RUNS=40
REF_START="$(date +%s.%N)"
REF_PIDS=()
for _ in $(seq "$CORES"); do
    ( for _ in $(seq "$REF_RUNS"); do
          echo -n "$PASSWORD" | argon2 benchmarksalt -id -t 2 -k 19456 -p 1 -r >/dev/null
      done ) &
    REF_PIDS+=($!)
done
wait "${REF_PIDS[@]}"
REF_END="$(date +%s.%N)"
REF_RATE="$(echo "$CORES * $REF_RUNS / ($REF_END - $REF_START)" | bc -l)"
read -r OWN_RATE OWN_MS <<<"$("$BIN/examples/argon2_rate" 5 "$CORES")"

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $CORES cores; argon2id m=19456 KiB t=2 p=1; wrk $DURATION, logins on $LOGIN_CONNECTIONS connections, me on $ME_CONNECTIONS"
echo
row "what" "per second" "p50" "p99" "non-2xx"
row "argon2 CLI (reference C), $CORES processes" "$(printf '%.1f' "$REF_RATE")" "-" "-" "-"
row "app hasher in-process, $CORES slots" "$OWN_RATE" "${OWN_MS}ms" "-" "-"

for slots in "$CORES" $((CORES > 1 ? CORES - 1 : 1)); do
    start_app ALLOW_REGISTRATION=true HASH_CONCURRENCY="$slots"
    for i in $(seq 0 $((USERS - 1))); do
        curl -s -o /dev/null -H 'Content-Type: application/json' \
            -d "{\"email\":\"bench$i@example.com\",\"password\":\"$PASSWORD\"}" "$BASE/api/auth/register"
    done
    TOKEN="$(login_token "$EMAIL" "$PASSWORD")"

    wrk -t1 -c"$LOGIN_CONNECTIONS" -d"$DURATION" --latency -s "$WORK/login.lua" "$BASE/api/auth/login" \
        >"$WORK/login.txt"
    read -r rps p50 p99 bad <<<"$(wrk_figures "$WORK/login.txt")"
    row "POST /api/auth/login, HASH_CONCURRENCY=$slots" "$rps" "$p50" "$p99" "$bad"

    wrk -t1 -c"$ME_CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" \
        "$BASE/api/auth/me" >"$WORK/me.txt"
    read -r rps p50 p99 bad <<<"$(wrk_figures "$WORK/me.txt")"
    row "GET /api/auth/me alone, HASH_CONCURRENCY=$slots" "$rps" "$p50" "$p99" "$bad"

    wrk -t1 -c"$LOGIN_CONNECTIONS" -d"$DURATION" -s "$WORK/login.lua" "$BASE/api/auth/login" \
        >"$WORK/storm.txt" &
    STORM_PID=$!
    sleep 1 # let the storm fill the hashing slots before measuring
    wrk -t1 -c"$ME_CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" \
        "$BASE/api/auth/me" >"$WORK/me_storm.txt"
    wait "$STORM_PID"
    read -r rps p50 p99 bad <<<"$(wrk_figures "$WORK/me_storm.txt")"
    row "GET /api/auth/me during a login storm, HASH_CONC=$slots" "$rps" "$p50" "$p99" "$bad"
    read -r rps p50 p99 bad <<<"$(wrk_figures "$WORK/storm.txt")"
    row "  (the storm's logins meanwhile)" "$rps" "-" "-" "$bad"
    stop_app
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
