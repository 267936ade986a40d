#!/usr/bin/env bash
# Rolling updates under load: REPLICAS replicas behind an L4 and an L7 HAProxy (bench/rolling/haproxy.cfg), a
# steady keep-alive load through each (loadgen, every request's outcome recorded, nothing retried), ROLLOUTS
# rollouts of all replicas (`docker restart -t 10`, one at a time, the next once the last is back in rotation),
# then PostgreSQL stopped for OUTAGE seconds under the same load. Once for our image, then for an image of the
# seed's shape (`sh -c "supervisor migrate && app"` as PID 1) behind the same balancers.
#
# Prints, per shape and balancer: requests and failures by kind in each phase, p50/p99/max, p99 during the
# rollouts against steady state, restart times, and the outage figures (longest wait, 503s, time until every
# replica is ready again after PostgreSQL is back, containers restarted).
#
# Usage: bench/rolling.sh
#   knobs (environment): REPLICAS=3 ROLLOUTS=3 CONNECTIONS=8 (per balancer) STEADY=15 (s of load before the
#   rollouts) OUTAGE=10 (s) RATE= (req/s per balancer; default: closed loop, as fast as answers come)
#   SHAPES="ours seed" IMAGE= (use this image instead of building HEAD) OUT_DIR= (keep loadgen JSON and logs there)
#   DRAIN_DELAY, STOP_GRACE, SHUTDOWN_TIMEOUT: passed to our replicas when set (default: the image's)
# Needs: root or the docker group, the base images (scripts/images, run here), curl, jq, cargo.
# Removes every container, network and image it creates. Takes about 8 minutes with the defaults on 2 cores.
# The whole script is one block, read before it runs: editing the file meanwhile cannot derail a run.
# shellcheck disable=SC2317 # (functions called through wait_for and trap look unreachable from inside the block)
{
set -Eeuo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

REPLICAS=${REPLICAS:-3}
ROLLOUTS=${ROLLOUTS:-3}
CONNECTIONS=${CONNECTIONS:-8}
STEADY=${STEADY:-15}
OUTAGE=${OUTAGE:-10}
RATE=${RATE:-}
SHAPES=${SHAPES:-ours seed}
IMAGE=${IMAGE:-}
OUT_DIR=${OUT_DIR:-}

usage() { echo "bench/rolling.sh: $1 (see the header of this script for the knobs)" >&2; exit 64; }
[[ $REPLICAS =~ ^[1-9]$ ]] || usage "REPLICAS must be 1-9"
[[ $ROLLOUTS =~ ^[1-9][0-9]?$ ]] || usage "ROLLOUTS must be 1-99"
[[ $CONNECTIONS =~ ^[1-9][0-9]{0,3}$ ]] || usage "CONNECTIONS must be 1-9999"
[[ $STEADY =~ ^[1-9][0-9]{0,3}$ ]] || usage "STEADY must be 1-9999 seconds"
[[ $OUTAGE =~ ^[0-9]{1,3}$ ]] || usage "OUTAGE must be 0-999 seconds"
[[ -z $RATE || $RATE =~ ^[1-9][0-9]*$ ]] || usage "RATE must be a whole number of requests per second"
for shape in $SHAPES; do [[ $shape == ours || $shape == seed ]] || usage "SHAPES takes ours and/or seed"; done
for tool in docker curl jq cargo; do command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }; done

readonly ID="ttroll$$"
readonly LABEL="time-tracker.bench=$ID"
readonly NET="$ID-net"
readonly PG="$ID-postgres"
readonly LB="$ID-lb"
readonly SEED_IMAGE="time-tracker:rolling-seed-$$"
readonly LOCAL_HAPROXY_IMAGE="time-tracker-bench-haproxy:$$"
work=$(mktemp -d /tmp/tt-rolling.XXXXXX)
chmod 755 "$work"
out=${OUT_DIR:-$work/out}
mkdir -p "$out"
built_images=()
loadgen_pids=()

cleanup() {
    set +e
    local pid ids
    [[ -z $OUT_DIR ]] || docker logs "$LB" >"$out/haproxy.log" 2>&1
    for pid in "${loadgen_pids[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${loadgen_pids[@]}"; do wait "$pid" 2>/dev/null; done
    mapfile -t ids < <(docker ps -aq --filter "label=$LABEL")
    ((${#ids[@]} == 0)) || timeout 60 docker rm -f -v "${ids[@]}" >/dev/null 2>&1
    docker network rm "$NET" >/dev/null 2>&1
    # --no-prune: the untagged layers stay as build cache for the next run.
    ((${#built_images[@]} == 0)) || docker image rm -f --no-prune "${built_images[@]}" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'printf "[rolling] error: line %s failed: %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

. scripts/lib/postgres_container.sh
log() { printf '[rolling %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[rolling] error: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }
# wait_for SECONDS COMMAND...: polls every 100 ms; false once SECONDS have passed.
wait_for() {
    local deadline=$(($(now_ms) + $1 * 1000))
    shift
    until "$@" >/dev/null 2>&1; do
        (($(now_ms) < deadline)) || return 1
        sleep 0.1
    done
}

# ---- images and tools ---------------------------------------------------------------------------------------------
log "building loadgen (release)"
timeout 1200 cargo build --release --quiet -p testkit --bin loadgen
readonly LOADGEN=target/release/loadgen

# build_image TAG CONTEXT SECONDS: quiet unless it fails.
build_image() {
    timeout "$3" docker build -t "$1" "$2" >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; die "building $1 failed"; }
}

timeout 900 scripts/images >"$work/images.log" 2>&1 || { cat "$work/images.log" >&2; die "scripts/images failed"; }

# The front door's image: the project's HAProxy stand-in when scripts/images made one, else the same from
# Debian's package, here.
haproxy_image=$(docker images --format '{{.Repository}}:{{.Tag}}' | awk '/^(docker\.io\/library\/)?haproxy:/ && !found { print; found = 1 }')
if [[ -z $haproxy_image ]]; then
    log "building a local HAProxy image (Debian's package)"
    mkdir -p "$work/haproxy"
    cat >"$work/haproxy/Dockerfile" <<'EOF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /usr/local/etc/haproxy
USER haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
EOF
    build_image "$LOCAL_HAPROXY_IMAGE" "$work/haproxy" 600
    built_images+=("$LOCAL_HAPROXY_IMAGE")
    haproxy_image=$LOCAL_HAPROXY_IMAGE
fi

if [[ -z $IMAGE ]]; then
    IMAGE="time-tracker:rolling-$$"
    log "building the image from HEAD ($(git log -1 --format='%h %s' | cut -c1-80))"
    mkdir -p "$work/context"
    git archive HEAD | tar -x -C "$work/context"
    built_images+=("$IMAGE")
    build_image "$IMAGE" "$work/context" 1800
fi
image_env=$(docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" |
    grep -E '^(DRAIN_DELAY|STOP_GRACE|SHUTDOWN_TIMEOUT)=' | paste -sd' ' - || true)

# The seed's shape: a shell as PID 1 running "migrate && server"; the shell ignores SIGTERM, so docker kills it.
mkdir -p "$work/seed"
printf 'FROM %s\nHEALTHCHECK NONE\nENTRYPOINT []\nCMD ["sh", "-c", "supervisor migrate && app"]\n' "$IMAGE" \
    >"$work/seed/Dockerfile"
built_images+=("$SEED_IMAGE")
build_image "$SEED_IMAGE" "$work/seed" 300

# ---- network, PostgreSQL, balancer --------------------------------------------------------------------------------
docker network create --label "$LABEL" "$NET" >/dev/null
start_postgres_container "$work" "$PG" "$NET" "$LABEL"
wait_for 90 postgres_ready "$PG" || die "postgres did not start"

servers() { # SHAPE: the server lines of one backend
    local i
    for ((i = 1; i <= REPLICAS; i++)); do
        if [[ $1 == ours ]]; then
            printf '    server app%d %s-app-%d:3000 check port 8081\n' "$i" "$ID" "$i"
        else
            printf '    server seed%d %s-seed-%d:3000 check\n' "$i" "$ID" "$i"
        fi
    done
}
servers ours >"$work/servers-ours"
servers seed >"$work/servers-seed"
awk -v ours="$work/servers-ours" -v seed="$work/servers-seed" '
    /# @servers ours@/ { while ((getline line < ours) > 0) print line; close(ours); next }
    /# @servers seed@/ { while ((getline line < seed) > 0) print line; close(seed); next }
    { print }' bench/rolling/haproxy.cfg >"$work/haproxy.cfg"
chmod 0444 "$work/haproxy.cfg"
docker run -d --name "$LB" --label "$LABEL" --network "$NET" \
    -v "$work/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" \
    -p 127.0.0.1::8001 -p 127.0.0.1::8002 -p 127.0.0.1::8003 -p 127.0.0.1::8004 -p 127.0.0.1::8404 \
    "$haproxy_image" >/dev/null
# Pipelines read their input to the end: with pipefail, a reader that quits early (head, grep -m1) fails them.
host_port() { docker port "$1" "$2/tcp" | awk -F: '/^127\.0\.0\.1:/ { port = $2 } END { if (port == "") exit 1; print port }'; }
stats_url="http://127.0.0.1:$(host_port "$LB" 8404)/stats;csv"
wait_for 30 curl -fsS --max-time 1 -o /dev/null "$stats_url" || die "HAProxy did not start: $(docker logs "$LB" 2>&1 | tail -5)"
haproxy_version=$(docker exec "$LB" haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }')

# ---- replicas -----------------------------------------------------------------------------------------------------
replica() { # SHAPE I: container name
    if [[ $1 == ours ]]; then printf '%s-app-%d' "$ID" "$2"; else printf '%s-seed-%d' "$ID" "$2"; fi
}
server() { # SHAPE I: server name in HAProxy
    if [[ $1 == ours ]]; then printf 'app%d' "$2"; else printf 'seed%d' "$2"; fi
}
start_replicas() { # SHAPE
    local i env=() var
    for var in DRAIN_DELAY STOP_GRACE SHUTDOWN_TIMEOUT; do
        [[ -z ${!var:-} ]] || env+=(-e "$var=${!var}")
    done
    for ((i = 1; i <= REPLICAS; i++)); do
        if [[ $1 == ours ]]; then
            # The readiness port is published on loopback so the script can watch it directly.
            docker run -d --name "$(replica ours "$i")" --label "$LABEL" --network "$NET" "${env[@]}" \
                -e DATABASE_URL_FILE=/run/secrets/database_url \
                -v "$work/database_url:/run/secrets/database_url:ro" -p 127.0.0.1::8081 "$IMAGE" >/dev/null
        else
            docker run -d --name "$(replica seed "$i")" --label "$LABEL" --network "$NET" \
                -e DATABASE_URL_FILE=/run/secrets/database_url \
                -v "$work/database_url:/run/secrets/database_url:ro" -p 127.0.0.1::3000 "$SEED_IMAGE" >/dev/null
        fi
    done
}
remove_replicas() { # SHAPE
    local i
    for ((i = 1; i <= REPLICAS; i++)); do
        docker logs "$(replica "$1" "$i")" >"$out/$(replica "$1" "$i").log" 2>&1
        timeout 30 docker rm -f -v "$(replica "$1" "$i")" >/dev/null
    done
}
# The replica's own readiness, asked directly: ours /readyz on 8081, the seed's shape /health on 3000.
replica_ready() { # SHAPE I
    local port
    if [[ $1 == ours ]]; then
        port=$(host_port "$(replica ours "$2")" 8081) || return 1
        [[ $(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "http://127.0.0.1:$port/readyz") == 200 ]]
    else
        port=$(host_port "$(replica seed "$2")" 3000) || return 1
        [[ $(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "http://127.0.0.1:$port/health") == 200 ]]
    fi
}
# Whether HAProxy has the replica in rotation (UP) in both of the shape's backends.
in_rotation() { # SHAPE I
    local csv
    csv=$(curl -fsS --max-time 1 "$stats_url") || return 1
    [[ $(awk -F, -v a="$1_l4" -v b="$1_l7" -v s="$(server "$1" "$2")" \
        '($1 == a || $1 == b) && $2 == s && $18 == "UP"' <<<"$csv" | wc -l) == 2 ]]
}
all_in_rotation() { # SHAPE
    local i
    for ((i = 1; i <= REPLICAS; i++)); do in_rotation "$1" "$i" || return 1; done
}
is_healthy() { [[ $(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1") == healthy ]]; }
started_at() { docker inspect -f '{{.State.StartedAt}} {{.RestartCount}}' "$1"; }

# ---- one shape: steady load, rollouts, outage ----------------------------------------------------------------------
# ensure_user BASE_URL: registers the bench user and gives it entries (once; later shapes share the database),
# leaving its bearer token in $token.
token=""
ensure_user() {
    local base=$1 credentials='{"email":"rolling@example.com","password":"rolling bench password"}' i
    if [[ -z $token ]]; then
        curl -fsS --max-time 10 -o /dev/null -H 'Content-Type: application/json' -d "$credentials" \
            "$base/api/auth/register" || die "registering the bench user failed"
        token=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' -d "$credentials" \
            "$base/api/auth/login" | jq -r .token)
        [[ -n $token && $token != null ]] || die "logging in failed"
        for i in 1 2 3 4 5 6; do
            curl -fsS --max-time 10 -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
                -d "{\"date\":\"2026-01-0${i}T09:00:00Z\",\"duration\":1.5,\"project\":\"bench\",\"description\":\"entry $i\"}" \
                "$base/api/entries" || die "creating entries failed"
        done
    fi
}

# set_phase FILE NAME: tags the requests that start from now on with NAME. loadgen reads the file every 100 ms:
# the pause lets it see the new name before the script acts, so no request is counted in the wrong phase.
set_phase() {
    echo "$2" >"$1"
    sleep 0.3
}

# run_shape SHAPE: writes $out/SHAPE-l4.json, SHAPE-l7.json and $out/SHAPE.times (key value lines).
run_shape() {
    local shape=$1 l4_port l7_port i r start restart_ms back_ms pids=() times=$out/$1.times
    if [[ $shape == ours ]]; then l4_port=8001 l7_port=8002; else l4_port=8003 l7_port=8004; fi
    : >"$times"
    log "$shape: starting $REPLICAS replicas"
    start_replicas "$shape"
    wait_for 120 all_in_rotation "$shape" || die "$shape: replicas not in rotation after 120 s"
    local l4 l7
    l4="http://127.0.0.1:$(host_port "$LB" $l4_port)"
    l7="http://127.0.0.1:$(host_port "$LB" $l7_port)"
    ensure_user "$l7"
    local header="Authorization: Bearer $token"
    [[ $(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H "$header" "$l4/api/entries?limit=5") == 200 ]] ||
        die "$shape: GET /api/entries through L4 is not 200"

    local phase_file=$work/$shape.phase stop_file=$work/$shape.stop rate=()
    [[ -z $RATE ]] || rate=(--rate "$RATE")
    echo steady >"$phase_file"
    rm -f "$stop_file"
    for balancer in l4 l7; do
        local base=$l4
        [[ $balancer == l7 ]] && base=$l7
        "$LOADGEN" -q -c "$CONNECTIONS" "${rate[@]}" --timeout 5s -H "$header" --phase-file "$phase_file" \
            --stop-file "$stop_file" --json "$out/$shape-$balancer.json" "$base/api/entries?limit=5" &
        pids+=($!)
        loadgen_pids+=($!)
    done
    log "$shape: steady load for $STEADY s"
    sleep "$STEADY"

    set_phase "$phase_file" rollout
    for ((r = 1; r <= ROLLOUTS; r++)); do
        log "$shape: rollout $r of $ROLLOUTS"
        for ((i = 1; i <= REPLICAS; i++)); do
            local name
            name=$(replica "$shape" "$i")
            start=$(now_ms)
            timeout 60 docker restart -t 10 "$name" >/dev/null || die "docker restart $name failed"
            restart_ms=$(($(now_ms) - start))
            # Back in rotation: ready by Docker's HEALTHCHECK (ours) and UP in both balancers.
            if [[ $shape == ours ]]; then wait_for 90 is_healthy "$name" || die "$name not healthy after 90 s"; fi
            wait_for 60 in_rotation "$shape" "$i" || die "$name not back in rotation after 60 s"
            back_ms=$(($(now_ms) - start))
            echo "restart $restart_ms $back_ms" >>"$times"
        done
    done

    if ((OUTAGE > 0)); then
        set_phase "$phase_file" outage
        local before after stopped_ms back_at ready_ms rotation_ms
        before=$(for ((i = 1; i <= REPLICAS; i++)); do started_at "$(replica "$shape" "$i")"; done)
        log "$shape: PostgreSQL stopped for $OUTAGE s"
        timeout 30 docker stop -t 10 "$PG" >/dev/null
        start=$(now_ms)
        sleep "$OUTAGE"
        # What the balancers show and answer while PostgreSQL is away (kept in OUT_DIR).
        curl -s --max-time 2 "$stats_url" >"$out/$shape-stats-outage.csv" || true
        curl -s -i --max-time 3 -H "$header" "$l4/api/entries?limit=5" >"$out/$shape-l4-outage-answer.txt" 2>&1 || true
        curl -s -i --max-time 3 -H "$header" "$l7/api/entries?limit=5" >"$out/$shape-l7-outage-answer.txt" 2>&1 || true
        timeout 30 docker start "$PG" >/dev/null
        wait_for 60 postgres_ready "$PG" || die "postgres did not come back"
        back_at=$(now_ms)
        stopped_ms=$((back_at - start))
        ready_ms=0
        for ((i = 1; i <= REPLICAS; i++)); do
            wait_for 60 replica_ready "$shape" "$i" || die "$(replica "$shape" "$i") not ready 60 s after postgres returned"
        done
        ready_ms=$(($(now_ms) - back_at))
        wait_for 60 all_in_rotation "$shape" || die "$shape: replicas not back in rotation after the outage"
        rotation_ms=$(($(now_ms) - back_at))
        after=$(for ((i = 1; i <= REPLICAS; i++)); do started_at "$(replica "$shape" "$i")"; done)
        local restarted
        restarted=$(diff <(echo "$before") <(echo "$after") | grep -c '^>' || true)
        echo "outage $stopped_ms $ready_ms $rotation_ms $restarted" >>"$times"
        # A few seconds of recovered load, still counted with the outage.
        sleep 3
    fi

    touch "$stop_file"
    for pid in "${pids[@]}"; do
        # The load ends within 100 ms of the stop file; requests in flight within their 5 s timeout.
        local deadline=$(($(now_ms) + 30000))
        while kill -0 "$pid" 2>/dev/null; do
            (($(now_ms) < deadline)) || die "loadgen $pid did not stop"
            sleep 0.1
        done
        wait "$pid" || die "loadgen $pid failed"
    done
    loadgen_pids=()
    remove_replicas "$shape"
}

for shape in $SHAPES; do run_shape "$shape"; done

# ---- figures ------------------------------------------------------------------------------------------------------
ms() { awk -v v="$1" 'BEGIN { if (v == "" || v == "null") print "-"; else if (v < 10) printf "%.2f ms", v; else if (v < 1000) printf "%.1f ms", v; else printf "%.2f s", v / 1000 }'; }
phase() { jq -c --arg p "$2" '.phases[] | select(.name == $p)' "$1"; }
failures_text() { # phase JSON: "0" or "N (kind n, kind n)"
    jq -r '(.failures | to_entries | map(select(.value > 0)) | map("\(.key) \(.value)") | join(", ")) as $k |
        if .failed == 0 then "0" else "\(.failed) (\($k))" end' <<<"$1"
}
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print 0; else print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

row() { printf '%-36s %-36s %-36s\n' "$@"; }
echo
echo "rolling updates ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, HAProxy $haproxy_version): $REPLICAS replicas, $ROLLOUTS rollouts,"
echo "  $CONNECTIONS keep-alive connections per balancer (${RATE:+$RATE req/s}${RATE:-closed loop}), GET /api/entries?limit=5;"
echo "  image $(git log -1 --format=%h) ${image_env:-(no DRAIN_DELAY/STOP_GRACE/SHUTDOWN_TIMEOUT in the image)}${DRAIN_DELAY:+, DRAIN_DELAY=$DRAIN_DELAY given}"
for shape in $SHAPES; do
    rollout_requests=0
    rollout_failed=0
    echo
    if [[ $shape == ours ]]; then echo "== ours (supervisor PID 1, drain)"; else echo "== seed's shape (sh -c \"supervisor migrate && app\" PID 1)"; fi
    row "" "L4 (mode tcp, no retries)" "L7 (mode http, retry-on)"
    for p in steady rollout outage; do
        [[ $p != outage || $OUTAGE -gt 0 ]] || continue
        declare -A cell=()
        for balancer in l4 l7; do
            json=$(phase "$out/$shape-$balancer.json" "$p")
            [[ -n $json ]] || { cell[$balancer-n]="-"; continue; }
            cell[$balancer-n]="$(jq -r .total <<<"$json") requests"
            cell[$balancer-f]=$(failures_text "$json")
            cell[$balancer-l]="$(ms "$(jq -r .latency_ms.p50 <<<"$json")") / $(ms "$(jq -r .latency_ms.p99 <<<"$json")") / $(ms "$(jq -r .latency_ms.max <<<"$json")")"
            if [[ $p == rollout ]]; then
                rollout_requests=$((rollout_requests + $(jq -r .total <<<"$json")))
                rollout_failed=$((rollout_failed + $(jq -r .failed <<<"$json")))
                steady_p99=$(phase "$out/$shape-$balancer.json" steady | jq -r .latency_ms.p99)
                cell[$balancer-r]=$(awk -v a="$(jq -r .latency_ms.p99 <<<"$json")" -v b="$steady_p99" 'BEGIN { printf "%.2fx", a / b }')
            fi
        done
        row "$p" "${cell[l4-n]}" "${cell[l7-n]}"
        row "  failed" "${cell[l4-f]:-}" "${cell[l7-f]:-}"
        row "  p50 / p99 / max" "${cell[l4-l]:-}" "${cell[l7-l]:-}"
        [[ $p != rollout ]] || row "  p99 rollout / steady" "${cell[l4-r]:-}" "${cell[l7-r]:-}"
        unset cell
    done
    restarts=$(grep '^restart ' "$out/$shape.times" || true)
    if [[ -n $restarts ]]; then
        row "docker restart -t 10 (median, max)" "$(ms "$(awk '{ print $2 }' <<<"$restarts" | median)"), $(ms "$(awk '{ print $2 }' <<<"$restarts" | sort -n | tail -n1)")"
        row "  .. back in rotation (median, max)" "$(ms "$(awk '{ print $3 }' <<<"$restarts" | median)"), $(ms "$(awk '{ print $3 }' <<<"$restarts" | sort -n | tail -n1)")"
    fi
    if read -r _ stopped_ms ready_ms rotation_ms restarted < <(grep '^outage ' "$out/$shape.times"); then
        row "postgres away (stop to ready)" "$(ms "$stopped_ms")"
        row "  all replicas ready after return" "$(ms "$ready_ms") (in rotation: $(ms "$rotation_ms"))"
        row "  containers restarted" "$restarted"
    fi
    echo "rollouts behind both balancers: $rollout_failed failed of $rollout_requests requests"
done
echo
[[ -z $OUT_DIR ]] || echo "loadgen JSON, replica and HAProxy logs: $OUT_DIR"
exit
}
