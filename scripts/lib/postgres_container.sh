# shellcheck shell=bash
# Sourced by scripts/container-test, bench/containers.sh and bench/rolling.sh: PostgreSQL in a container on the
# caller's Docker network, its password and the app's DATABASE_URL handed over as files (as compose.yaml does).

# start_postgres_container DIR NAME NETWORK LABEL: writes a random password to DIR/pg_password (for the server)
# and the URL of its `postgres` database to DIR/database_url (for the app image's user, uid 10001), then starts
# docker.io/library/postgres:15-bookworm as NAME on NETWORK, labelled LABEL.
start_postgres_container() {
    local dir=$1 name=$2 network=$3 label=$4 password
    password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s' "$password" >"$dir/pg_password"
    chmod 0444 "$dir/pg_password"
    printf 'postgres://postgres:%s@%s:5432/postgres?sslmode=disable' "$password" "$name" >"$dir/database_url"
    # The image's user reads its secret file; nobody else needs to.
    chown 10001:10001 "$dir/database_url"
    chmod 0400 "$dir/database_url"
    timeout 60 docker run -d --name "$name" --label "$label" --network "$network" \
        -e POSTGRES_PASSWORD_FILE=/run/secrets/pg_password -v "$dir/pg_password:/run/secrets/pg_password:ro" \
        docker.io/library/postgres:15-bookworm >/dev/null
}

# postgres_ready NAME: whether the server in container NAME accepts connections.
postgres_ready() { docker exec "$1" pg_isready -q -h 127.0.0.1 -U postgres; }
