//! The app behind PgBouncer (Debian's `pgbouncer`), as many deployments run it, in session and in
//! transaction pooling: every kind of request works through the pooler from several clients at once, and
//! the database deadline's server side (`statement_timeout`) still applies.
//!
//! In transaction mode PgBouncer has fewer server connections than the app has connections to it, so the
//! statements of one app connection run on whichever server connection is free: a statement that left
//! anything on a server connection (a named prepared statement) would be missing on the next one.

mod entries_support;
mod pg_control;
mod support;

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use entries_support::{multipart, post_raw};
use serde_json::{json, Value};
use support::{login, migrated_db, register, start_app};
use testkit::{Database, PgBouncer, PoolMode, Response, Running};

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "another horse battery";
const TOGGL: &[u8] = include_bytes!("fixtures/toggl_time_entries.json");
const TEMPO: &[u8] = include_bytes!("fixtures/tempo_worklogs.json");
const CSV: &[u8] = include_bytes!("fixtures/toggl_detailed_report.csv");

/// Users working at once, each from a thread of its own.
const CLIENTS: usize = 6;
/// Password hashes at once (`HASH_CONCURRENCY`): one per user, so that no login waits for a hashing
/// slot long enough to be refused on a loaded machine running debug builds.
const HASHES_AT_ONCE: &str = "6";
/// The app's connections to PgBouncer at most (`DB_POOL_SIZE`).
const APP_CONNECTIONS: &str = "8";
/// PgBouncer's server connections in transaction mode: fewer than the app's connections to it.
const SERVER_CONNECTIONS: u32 = 2;
/// Times each user lists and summarizes its entries, all users at once.
const READ_ROUNDS: usize = 4;
/// Entries each user creates through `POST /api/entries`.
const MANUAL_ENTRIES: usize = 4;

/// The app behind a PgBouncer.
struct Behind {
    db: Database,
    bouncer: PgBouncer,
    app: Running,
}

/// False, saying so, when the machine has no pgbouncer.
fn pgbouncer_installed() -> bool {
    let installed = PgBouncer::binary().is_some();
    if !installed {
        eprintln!("skipped: pgbouncer is not installed (scripts/test installs Debian's pgbouncer)");
    }
    installed
}

impl Behind {
    /// On a fresh database; None when the machine has no pgbouncer.
    fn start(mode: PoolMode, env: &[(&str, &str)]) -> Option<Behind> {
        pgbouncer_installed().then(|| Behind::on(migrated_db(), mode, env))
    }

    /// In session mode every app connection holds a server connection for its lifetime, so
    /// PgBouncer's pool has room for all of them.
    fn on(db: Database, mode: PoolMode, env: &[(&str, &str)]) -> Behind {
        let bouncer = match mode {
            PoolMode::Session => PgBouncer::start(&db.cluster, mode),
            PoolMode::Transaction => {
                PgBouncer::start_with_pool_size(&db.cluster, mode, SERVER_CONNECTIONS)
            }
        };
        let app = start_app(&bouncer.url(&db.name), env);
        Behind { db, bouncer, app }
    }

    /// Registers `email` and logs in; the `Authorization` value.
    fn user(&self, email: &str) -> String {
        register(&self.app, email, PASSWORD).expect(201);
        let (token, _) = login(&self.app, email, PASSWORD);
        format!("Bearer {token}")
    }
}

/// Where the clients wait for each other, for at most a minute: a client that failed before it holds
/// up no other.
#[derive(Default)]
struct Together {
    arrived: Mutex<usize>,
    all_arrived: Condvar,
}

impl Together {
    fn wait(&self) {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_arrived.notify_all();
        let _ = self
            .all_arrived
            .wait_timeout_while(arrived, Duration::from_secs(60), |n| *n < CLIENTS)
            .unwrap();
    }
}

/// One user's requests, checked as they go: accounts, sessions, entries, imports of every format,
/// lists with every filter, summaries.
struct Client<'a> {
    app: &'a Running,
    email: String,
    auth: String,
}

impl Client<'_> {
    fn headers(&self) -> [(&str, &str); 1] {
        [("Authorization", self.auth.as_str())]
    }

    fn get(&self, path: &str) -> Value {
        let response = self.app.api().get(path, &self.headers());
        response.expect(200);
        response.json()
    }

    fn post_json(&self, path: &str, body: &Value) -> Response {
        self.app.api().post_json(path, &self.headers(), body)
    }

    fn import(&self, path: &str, content_type: &str, body: &[u8]) -> Value {
        let response = post_raw(self.app, &self.auth, path, content_type, body);
        response.expect(200);
        response.json()
    }

    fn run(app: &Running, n: usize, together: &Together) {
        let email = format!("user{n}@example.com");
        register(app, &email, PASSWORD).expect(201);
        let wrong = app.api().post_json(
            "/api/auth/login",
            &[],
            &json!({"email": email, "password": "not the password"}),
        );
        wrong.expect(401);
        let (token, _) = login(app, &email, PASSWORD);
        let client = Client {
            app,
            email,
            auth: format!("Bearer {token}"),
        };
        assert_eq!(client.get("/api/auth/me")["email"], client.email.as_str());
        let ids = client.entries_one_by_one();
        client.imports();
        // The reads from every client at once: most of the app's connections are busy together.
        together.wait();
        for _ in 0..READ_ROUNDS {
            client.lists();
            client.summaries();
        }
        client.deletes(&ids[MANUAL_ENTRIES - 1]);
        client.changes_the_password();
    }

    /// Creates, reads and updates the manual entries m0..m3 (one a day from 2024-03-01, projects A
    /// and B in turn); their ids.
    fn entries_one_by_one(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..MANUAL_ENTRIES {
            let project = ["A", "B"][i % 2];
            let entry = json!({"source": "manual", "externalId": format!("m{i}"),
                               "date": format!("2024-03-0{}T09:00:00Z", i + 1),
                               "duration": 1.0 + i as f64, "project": project,
                               "description": format!("entry {i}")});
            let created = self.post_json("/api/entries", &entry);
            let id = created.expect(201).json()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(
                self.get(&format!("/api/entries/{id}"))["externalId"],
                format!("m{i}")
            );
            let patched = self.app.api().request(
                "PATCH",
                &format!("/api/entries/{id}"),
                &[
                    ("Authorization", self.auth.as_str()),
                    ("Content-Type", "application/json"),
                ],
                Some(br#"{"duration": 0.5}"#),
            );
            assert_eq!(patched.expect(200).json()["duration"], 0.5);
            ids.push(id);
        }
        let duplicate = json!({"source": "manual", "externalId": "m0",
                               "date": "2024-03-01T09:00:00Z", "duration": 1});
        self.post_json("/api/entries", &duplicate).expect(409);
        ids
    }

    /// Toggl JSON (twice: idempotent), Tempo JSON and the Toggl CSV report.
    fn imports(&self) {
        let json = "application/json";
        let counts = |inserted: u64, unchanged: u64| json!({"inserted": inserted, "updated": 0, "unchanged": unchanged});
        assert_eq!(self.import("/api/import/toggl", json, TOGGL), counts(6, 0));
        assert_eq!(self.import("/api/import/toggl", json, TOGGL), counts(0, 6));
        let tempo = self.import("/api/import/tempo?tz=Europe/Berlin", json, TEMPO);
        assert_eq!(tempo, counts(5, 0));
        let (content_type, body) = multipart("file", "report.csv", CSV);
        let csv = self.import("/api/import/csv?tz=Europe/Berlin", &content_type, &body);
        assert_eq!(csv, counts(5, 0));
    }

    fn lists(&self) {
        // Every entry once, in pages of 3.
        let mut seen = std::collections::HashSet::new();
        let mut path = "/api/entries?limit=3".to_owned();
        loop {
            let page = self.get(&path);
            for entry in page["entries"].as_array().unwrap() {
                assert!(seen.insert(entry["id"].as_str().unwrap().to_owned()));
            }
            match page["nextCursor"].as_str() {
                Some(cursor) => path = format!("/api/entries?limit=3&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), MANUAL_ENTRIES + 6 + 5 + 5);

        let externals = |query: &str| -> Vec<String> {
            self.get(&format!("/api/entries?{query}"))["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["externalId"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(externals("source=manual&project=A"), ["m0", "m2"]);
        assert_eq!(
            externals("source=manual&from=2024-03-02T00:00:00Z&to=2024-03-04T00:00:00Z"),
            ["m1", "m2"]
        );
        assert_eq!(externals("source=tempo&limit=2").len(), 2);
    }

    fn summaries(&self) {
        let by_source = self.get("/api/summary?group_by=source");
        let counts: Vec<(&str, i64)> = by_source
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g["key"].as_str().unwrap(), g["entries"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            counts,
            [("manual", 4), ("tempo", 5), ("toggl", 6), ("toggl-csv", 5)]
        );
        let days = self.get(
            "/api/summary?group_by=day&tz=Europe/Berlin&from=2024-03-01T00:00:00Z&to=2024-03-05T00:00:00Z",
        );
        assert_eq!(
            days,
            json!([{"key": "2024-03-01", "hours": 0.5, "entries": 1},
                   {"key": "2024-03-02", "hours": 0.5, "entries": 1},
                   {"key": "2024-03-03", "hours": 0.5, "entries": 1},
                   {"key": "2024-03-04", "hours": 0.5, "entries": 1}])
        );
        let by_project = self.get("/api/summary?group_by=project&to=2024-03-05T00:00:00Z");
        assert_eq!(
            by_project,
            json!([{"key": "A", "hours": 1.0, "entries": 2},
                   {"key": "B", "hours": 1.0, "entries": 2}])
        );
    }

    fn deletes(&self, id: &str) {
        let path = format!("/api/entries/{id}");
        self.app
            .api()
            .request("DELETE", &path, &self.headers(), None)
            .expect(204);
        self.app.api().get(&path, &self.headers()).expect(404);
        self.app
            .api()
            .request("DELETE", &path, &self.headers(), None)
            .expect(404);
    }

    fn changes_the_password(&self) {
        self.post_json(
            "/api/auth/password",
            &json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
        )
        .expect(204);
        self.app
            .api()
            .get("/api/auth/me", &self.headers())
            .expect(401);
        let (token, _) = login(self.app, &self.email, NEW_PASSWORD);
        let auth = format!("Bearer {token}");
        let headers = [("Authorization", auth.as_str())];
        self.app.api().get("/api/auth/me", &headers).expect(200);
        self.app
            .api()
            .request("POST", "/api/auth/logout", &headers, None)
            .expect(204);
        self.app.api().get("/api/auth/me", &headers).expect(401);
    }
}

/// [`CLIENTS`] users at once, each through every kind of request.
fn every_kind_of_request_from_several_clients(mode: PoolMode) -> Option<Behind> {
    let behind = Behind::start(
        mode,
        &[
            ("ALLOW_REGISTRATION", "true"),
            ("DB_POOL_SIZE", APP_CONNECTIONS),
            ("HASH_CONCURRENCY", HASHES_AT_ONCE),
            ("RUST_LOG", "info"),
        ],
    )?;
    let together = Together::default();
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|n| {
                let (app, together) = (&behind.app, &together);
                scope.spawn(move || Client::run(app, n, together))
            })
            .collect();
        let failed = clients
            .into_iter()
            .map(|client| client.join())
            .filter(Result::is_err)
            .count();
        if failed > 0 {
            let errors = |log: String| -> String {
                let lines = log.lines().filter(|line| line.contains("ERROR"));
                lines.take(10).collect::<Vec<_>>().join("\n")
            };
            panic!(
                "{failed} of {CLIENTS} clients failed; the app's errors:\n{}\nthe server's:\n{}",
                errors(behind.app.log()),
                errors(behind.db.cluster.log())
            );
        }
    });
    behind.app.api().get("/health", &[]).expect(200);
    Some(behind)
}

#[test]
fn every_kind_of_request_works_through_session_pooling() {
    every_kind_of_request_from_several_clients(PoolMode::Session);
}

#[test]
fn every_kind_of_request_works_through_transaction_pooling() {
    let Some(behind) = every_kind_of_request_from_several_clients(PoolMode::Transaction) else {
        return;
    };
    // The app's connections really shared fewer server connections.
    let pool = behind.bouncer.pool_connections(&behind.db.name);
    assert!(
        pool.servers <= SERVER_CONNECTIONS && pool.clients > SERVER_CONNECTIONS,
        "{pool:?}"
    );
}

/// A PATCH blocked on a row lock gets its 503 at the deadline, and the server gives the statement up
/// as well.
fn the_blocked_statement_ends_on_both_sides(behind: &Behind) {
    let Behind { db, bouncer, app } = behind;
    let auth = behind.user("ada@example.com");
    let created = app.api().post_json(
        "/api/entries",
        &[("Authorization", auth.as_str())],
        &json!({"source": "manual", "externalId": "e1", "date": "2024-03-01T09:00:00Z",
                "duration": 1.5}),
    );
    let id = created.expect(201).json()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let sql = pg_control::Sql::connect(&db.url());
    sql.batch("BEGIN");
    sql.execute("SELECT 1 FROM time_entries FOR UPDATE", &[]);
    let started = Instant::now();
    let patched = app.api().request(
        "PATCH",
        &format!("/api/entries/{id}"),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"duration": 2}"#),
    );
    let elapsed = started.elapsed();
    patched.expect(503);
    assert!(patched.header("retry-after").is_some());
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    sql.wait_for_no_lock_waiters("UPDATE time_entries", Duration::from_secs(2));
    sql.batch("ROLLBACK");
    assert!(
        !bouncer.log().contains("unsupported startup parameter"),
        "{}",
        bouncer.log()
    );
}

/// In session mode the app's own `SET statement_timeout` on each new connection follows it through
/// the pooler.
#[test]
fn the_servers_statement_timeout_applies_through_session_pooling() {
    let Some(behind) = Behind::start(PoolMode::Session, &[("DB_TIMEOUT", "1500ms")]) else {
        return;
    };
    the_blocked_statement_ends_on_both_sides(&behind);
}

/// In transaction mode a session setting cannot follow a client, so the operator gives the role the
/// timeout (as the README says): every server connection then has it.
#[test]
fn the_servers_statement_timeout_applies_through_transaction_pooling_with_the_roles_default() {
    if !pgbouncer_installed() {
        return;
    }
    let db = migrated_db();
    // Before PgBouncer opens a server connection, which would keep the old default.
    set_role_statement_timeout(&db, "1500ms");
    let behind = Behind::on(db, PoolMode::Transaction, &[("DB_TIMEOUT", "1500ms")]);
    the_blocked_statement_ends_on_both_sides(&behind);
}

/// What an operator runs for transaction pooling (README): the app's role gets `DB_TIMEOUT` as its
/// default `statement_timeout` in the app's database.
fn set_role_statement_timeout(db: &Database, timeout: &str) {
    db.psql(&format!(
        "ALTER ROLE postgres IN DATABASE {} SET statement_timeout = '{timeout}'",
        db.name
    ));
}

/// Behind a transaction pooler, the `statement_timeout` the app sets on a new connection stays on the
/// server connection that ran it, for every other client of the pooler; once the role's default is
/// `DB_TIMEOUT`, the app sets nothing there.
#[test]
fn the_apps_statement_timeout_stays_off_shared_server_connections_once_the_role_has_it() {
    if !pgbouncer_installed() {
        return;
    }
    let db = migrated_db();
    let statement_timeout = |bouncer: &PgBouncer| {
        bouncer.psql(
            &db.name,
            "SELECT setting || ' ' || source FROM pg_settings WHERE name = 'statement_timeout'",
        )
    };
    // One server connection: the app's statements and the other client's meet on it.
    let fresh_pooler = || PgBouncer::start_with_pool_size(&db.cluster, PoolMode::Transaction, 1);

    let bouncer = fresh_pooler();
    let app = start_app(&bouncer.url(&db.name), &[("DB_TIMEOUT", "1500ms")]);
    app.api().get("/health", &[]).expect(200);
    assert_eq!(statement_timeout(&bouncer), "1500 session");
    drop((app, bouncer));

    set_role_statement_timeout(&db, "1500ms");
    let bouncer = fresh_pooler();
    let app = start_app(&bouncer.url(&db.name), &[("DB_TIMEOUT", "1500ms")]);
    app.api().get("/health", &[]).expect(200);
    assert_eq!(statement_timeout(&bouncer), "1500 database user");
}
