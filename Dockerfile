# time-tracker: supervisor (PID 1: migrations, signals, health on 8081) running the API (3000); probe as HEALTHCHECK.
#
#   docker build -t time-tracker .
#   docker run --rm -e DATABASE_URL_FILE=/run/secrets/database_url -v ./database_url:/run/secrets/database_url:ro \
#     -p 3000:3000 -p 8081:8081 time-tracker

# ---- builder -----------------------------------------------------------------------------------------------------
FROM docker.io/library/rust:1-slim-bookworm AS builder

# native-tls links the system OpenSSL.
# hadolint ignore=DL3008 # versions come from the pinned bookworm suite; exact pins break when the archive moves on
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependency layer: the manifests alone with empty sources, so editing the real sources reuses every compiled
# dependency (works with the classic builder too, which has no RUN --mount cache).
COPY Cargo.toml Cargo.lock ./
COPY app/Cargo.toml app/
COPY common/Cargo.toml common/
COPY probe/Cargo.toml probe/
COPY supervisor/Cargo.toml supervisor/
COPY testkit/Cargo.toml testkit/
# Each binary is built on its own, as below, so each gets the features it asks for (the probe stays without the
# database stack) and the cached dependencies match what the real builds need.
RUN for crate in app common probe supervisor testkit; do \
        mkdir -p "$crate/src" && : > "$crate/src/lib.rs"; \
    done \
 && for bin in app probe supervisor; do echo 'fn main() {}' > "$bin/src/main.rs"; done \
 && cargo build --release --locked -p probe \
 && cargo build --release --locked -p supervisor \
 && cargo build --release --locked -p app

# One layer per binary, so a source edit rebuilds only the binaries downstream of it. The placeholders stay until
# the real sources overwrite them: cargo loads every workspace member, built or not. COPY keeps the checkout's
# modification times, which can be older than the placeholder build: touch the sources so cargo sees them as newer.
COPY migrations migrations/
COPY common common/
COPY testkit testkit/
RUN find common testkit migrations -type f -exec touch {} + && mkdir -p /out
COPY probe probe/
RUN find probe -type f -exec touch {} + \
 && cargo build --release --locked -p probe \
 && cp target/release/probe /out/
COPY supervisor supervisor/
RUN find supervisor -type f -exec touch {} + \
 && cargo build --release --locked -p supervisor \
 && cp target/release/supervisor /out/
COPY app app/
RUN find app -type f -exec touch {} + \
 && cargo build --release --locked -p app \
 && cp target/release/app /out/

# ---- runtime -----------------------------------------------------------------------------------------------------
FROM docker.io/library/debian:bookworm-slim

# CA certificates (and the OpenSSL library they bring) for sslmode=require/verify-*; a fixed uid/gid so volume and
# secret ownership can be planned; no home, no login shell.
# hadolint ignore=DL3008 # versions come from the pinned bookworm suite; exact pins break when the archive moves on
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 timetracker \
 && useradd --system --uid 10001 --gid timetracker --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin timetracker

COPY --from=builder /out/ /usr/local/bin/

USER 10001:10001
# The lame-duck drain on docker stop (SIGTERM), timed for a balancer that checks /readyz every 1-2 s with fall 2:
#   0 s     /readyz fails at once and every API response carries Connection: close (keep-alive clients leave)
#   <=4 s   such a balancer has marked the replica down (two failed checks at most 2 s apart), 1 s before...
#   5 s     ...DRAIN_DELAY ends: the app stops accepting and finishes what is in flight within SHUTDOWN_TIMEOUT 3 s,
#           and STOP_GRACE 4 s (> 3 s) bounds that before SIGKILL of a stuck app
#   <=9 s   DRAIN_DELAY + STOP_GRACE = 9 s, inside docker stop's default 10 s: the supervisor exits 0 on its own.
# A request still running 3 s after the listener closed is cut off (imports may take longer: stop with -t 40 and a
# larger SHUTDOWN_TIMEOUT/STOP_GRACE when one must finish). Kubernetes needs longer (see deploy/kubernetes).
ENV PORT=3000 \
    HEALTH_ADDR=0.0.0.0:8081 \
    DRAIN_DELAY=5s \
    STOP_GRACE=4s \
    SHUTDOWN_TIMEOUT=3s
EXPOSE 3000 8081

STOPSIGNAL SIGTERM

# probe asks the supervisor's /readyz on loopback, leaving PostgreSQL out of the verdict, with its own 2 s deadline.
# - Not plain --ready (or the default /health): those follow the database, so a database outage would mark every
#   container unhealthy at once although none of them can be helped by a restart; the database has its own
#   health check, and balancers read /readyz themselves.
# - Not --live: /livez passes while the supervisor is still waiting for the database or migrating, so the
#   container would report healthy (and compose's service_healthy release dependants) before it can serve.
#   /readyz?exclude=postgres still fails while starting and while draining, and when the app is dead or hung.
# interval 5s: a new container reports healthy within ~5 s of being ready; probe starts in milliseconds.
# timeout 3s: above probe's 2 s deadline, so it only catches a probe that could not even start.
# start-period 60s: matches DB_WAIT's default; failures while PostgreSQL is still coming up do not count.
# retries 3: ~15 s of consecutive failures before "unhealthy", so one slow answer does not flap the state.
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/probe", "--ready", "--exclude", "postgres"]

ENTRYPOINT ["/usr/local/bin/supervisor"]
