#!/usr/bin/env bash
# Container figures, side by side with an image of the seed's shape (`sh -c "migrate && server"` as PID 1):
#   - docker stop: wall time and exit code (goal < 500 ms and 0; the seed's shell ignores SIGTERM -> 10 s, 137).
#     Measured with DRAIN_DELAY=0s (STOP_DRAIN_DELAY to change): the image's lame-duck drain adds exactly its
#     DRAIN_DELAY (5 s) on purpose; scripts/container-test measures the stop as shipped.
#   - bytes our layers add on top of debian:bookworm-slim (goal < 25 MB)
#   - docker build time after a one-line source edit, dependency layer warm
#   - time from `docker run` to healthy (Docker's HEALTHCHECK) and to the first passing probe
#
# Usage: bench/containers.sh [STOP_RUNS]      (default 3 docker stop runs per image)
# Needs the base images (scripts/images). Removes everything it creates.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

runs=${1:-3}
[[ $runs =~ ^[1-9][0-9]?$ ]] || { echo "usage: $0 [STOP_RUNS 1-99]" >&2; exit 64; }

readonly ID="ttbench$$"
readonly IMAGE="time-tracker:bench-$$"
readonly SEED_IMAGE="time-tracker:bench-seed-$$"
readonly NET="$ID-net"
readonly PG="$ID-postgres"
readonly LABEL="time-tracker.bench=$ID"
work=$(mktemp -d /tmp/tt-bench.XXXXXX)
chmod 755 "$work"

cleanup() {
    set +e
    local ids
    mapfile -t ids < <(docker ps -aq --filter "label=$LABEL")
    ((${#ids[@]} == 0)) || timeout 60 docker rm -f -v "${ids[@]}" >/dev/null 2>&1
    docker network rm "$NET" >/dev/null 2>&1
    docker image rm -f "$SEED_IMAGE" "$IMAGE" "$IMAGE-edit" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. scripts/lib/postgres_container.sh
log() { printf '[bench] %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}
health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1" 2>/dev/null; }
is_healthy() { [[ $(health_of "$1") == healthy ]]; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

timeout 900 scripts/images >/dev/null

# A snapshot of the committed sources: the build-after-edit figure must not depend on uncommitted work.
ctx="$work/context"
mkdir -p "$ctx"
git archive HEAD | tar -x -C "$ctx"

log "building the image (warms the dependency layer)"
timeout 1800 docker build -q -t "$IMAGE" "$ctx" >/dev/null

log "one-line source edit, rebuild"
printf '\n// %s\n' "rebuild $(date +%s%N)" >>"$ctx/app/src/main.rs"
start=$(now_ms)
timeout 1800 docker build -t "$IMAGE-edit" "$ctx" >"$work/edit-build.log" 2>&1
edit_build_ms=$(($(now_ms) - start))
# The dependency step is the one that compiles the placeholder sources.
if grep -A1 'echo .fn main() {}' "$work/edit-build.log" | grep -q 'Using cache'; then dep_layer=cached; else dep_layer=REBUILT; fi

# Seed's shape: a shell as PID 1 running "migrate && server"; the shell ignores SIGTERM as PID 1.
mkdir -p "$work/seed"
cat >"$work/seed/Dockerfile" <<EOF
FROM $IMAGE
HEALTHCHECK NONE
ENTRYPOINT []
CMD ["sh", "-c", "supervisor migrate && app"]
EOF
timeout 300 docker build -q -t "$SEED_IMAGE" "$work/seed" >/dev/null

base_bytes=$(docker image inspect -f '{{.Size}}' docker.io/library/debian:bookworm-slim)
ours_bytes=$(docker image inspect -f '{{.Size}}' "$IMAGE")
added_bytes=$((ours_bytes - base_bytes))
binaries_bytes=$(docker run --rm --entrypoint /bin/sh "$IMAGE" -c \
    'stat -c %s /usr/local/bin/supervisor /usr/local/bin/app /usr/local/bin/probe' | awk '{ s += $1 } END { print s }')

docker network create --internal --label "$LABEL" "$NET" >/dev/null
start_postgres_container "$work" "$PG" "$NET" "$LABEL"
wait_for 90 postgres_ready "$PG" || { echo "postgres did not start" >&2; exit 1; }

run_image() {
    timeout 60 docker run -d --name "$1" --label "$LABEL" --network "$NET" \
        -e DATABASE_URL_FILE=/run/secrets/database_url -v "$work/database_url:/run/secrets/database_url:ro" \
        -e DRAIN_DELAY="${STOP_DRAIN_DELAY:-0s}" "$2" >/dev/null
}
app_answers() { docker exec "$1" probe --quiet --timeout 500ms --live --url http://127.0.0.1:3000; }
probe_passes() { docker exec "$1" probe --quiet --timeout 500ms; }

# stop_series IMAGE: prints "median_ms min_ms max_ms exit_codes" over $runs runs.
stop_series() {
    local image=$1 i name times=() codes=()
    for ((i = 1; i <= runs; i++)); do
        name="$ID-stop-$i-$RANDOM"
        run_image "$name" "$image"
        wait_for 90 app_answers "$name" || { echo "the app in $image did not come up" >&2; exit 1; }
        local start
        start=$(now_ms)
        timeout 30 docker stop -t 10 "$name" >/dev/null
        times+=($(($(now_ms) - start)))
        codes+=("$(docker inspect -f '{{.State.ExitCode}}' "$name")")
        docker rm -f -v "$name" >/dev/null
    done
    local sorted
    sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    printf '%s %s %s %s\n' "$(median <<<"$sorted")" "$(head -n1 <<<"$sorted")" "$(tail -n1 <<<"$sorted")" \
        "$(printf '%s\n' "${codes[@]}" | sort -u | paste -sd, -)"
}

log "docker stop x$runs: ours"
read -r ours_med ours_min ours_max ours_codes <<<"$(stop_series "$IMAGE")"
log "docker stop x$runs: seed shape (each waits for docker's 10 s)"
read -r seed_med seed_min seed_max seed_codes <<<"$(stop_series "$SEED_IMAGE")"

log "run to healthy"
name="$ID-healthy"
start=$(now_ms)
run_image "$name" "$IMAGE"
wait_for 90 probe_passes "$name"
probe_ms=$(($(now_ms) - start))
wait_for 90 is_healthy "$name"
healthy_ms=$(($(now_ms) - start))
interval=$(docker image inspect -f '{{.Config.Healthcheck.Interval}}' "$IMAGE")
docker rm -f -v "$name" >/dev/null
name="$ID-seed-up"
start=$(now_ms)
run_image "$name" "$SEED_IMAGE"
wait_for 90 app_answers "$name"
seed_up_ms=$(($(now_ms) - start))
docker rm -f -v "$name" >/dev/null

printf '\n%-44s %-26s %-26s\n' "containers ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)" "ours (supervisor PID 1)" "seed shape (sh -c PID 1)"
printf '%-44s %-26s %-26s\n' "docker stop, median of $runs (min-max)" "$ours_med ms ($ours_min-$ours_max)" "$seed_med ms ($seed_min-$seed_max)"
printf '%-44s %-26s %-26s\n' "docker stop exit code" "$ours_codes" "$seed_codes"
printf '%-44s %-26s %-26s\n' "run -> API answers /livez (docker exec poll)" "-" "$seed_up_ms ms"
printf '%-44s %-26s %-26s\n' "run -> probe passes (docker exec poll)" "$probe_ms ms" "-"
printf '%-44s %-26s %-26s\n' "run -> Docker reports healthy" "$healthy_ms ms (interval $interval)" "no HEALTHCHECK"
printf '%-44s %-26s\n' "bytes our layers add to bookworm-slim" "$(mb "$added_bytes") (binaries $(mb "$binaries_bytes"))"
printf '%-44s %-26s\n' "image size" "$(mb "$ours_bytes")"
printf '%-44s %-26s\n' "rebuild after a one-line source edit" "$((edit_build_ms / 1000)).$(((edit_build_ms % 1000) / 100)) s (dependency layer $dep_layer)"
