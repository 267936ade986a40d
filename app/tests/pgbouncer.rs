//! The app behind PgBouncer (Debian's `pgbouncer`, session pooling), as many deployments run it: every kind of
//! request works through the pooler, and the database deadline's server side (each connection's
//! `statement_timeout`, set by a statement because PgBouncer refuses unknown startup parameters) still applies.

mod pg_control;
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{login, migrated_db, register, start_app};
use testkit::{Database, PgBouncer, PoolMode, Running};

const PASSWORD: &str = "correct horse battery";

/// The app behind a session-pooling PgBouncer, with a user logged in.
struct Behind {
    db: Database,
    _bouncer: PgBouncer,
    app: Running,
    auth: String,
}

impl Behind {
    /// None, saying so, when the machine has no pgbouncer.
    fn start() -> Option<Behind> {
        if PgBouncer::binary().is_none() {
            eprintln!(
                "skipped: pgbouncer is not installed (scripts/test installs Debian's pgbouncer)"
            );
            return None;
        }
        let db = migrated_db();
        let bouncer = PgBouncer::start(&db.cluster, PoolMode::Session);
        let app = start_app(&bouncer.url(&db.name), &[("DB_TIMEOUT", "1500ms")]);
        register(&app, "ada@example.com", PASSWORD).expect(201);
        let (token, _) = login(&app, "ada@example.com", PASSWORD);
        Some(Behind {
            db,
            _bouncer: bouncer,
            app,
            auth: format!("Bearer {token}"),
        })
    }

    fn create_entry(&self) -> String {
        let created = self.app.api().post_json(
            "/api/entries",
            &[("Authorization", self.auth.as_str())],
            &json!({"source": "manual", "externalId": "e1", "date": "2024-03-01T09:00:00Z",
                    "duration": 1.5, "project": "P", "description": "d"}),
        );
        created.expect(201).json()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

#[test]
fn every_kind_of_request_works_through_pgbouncer() {
    let Some(behind) = Behind::start() else {
        return;
    };
    let id = behind.create_entry();
    let Behind { app, auth, .. } = &behind;
    let headers = [("Authorization", auth.as_str())];
    app.api().get("/api/auth/me", &headers).expect(200);

    let toggl = json!([{"id": 1, "start": "2024-03-01T10:00:00Z", "duration": 3600,
                        "description": "imported", "project_id": null}]);
    let imported = app.api().post_json("/api/import/toggl", &headers, &toggl);
    imported.expect(200);
    assert_eq!(imported.json()["inserted"], 1, "{}", imported.text());
    // Idempotent through the pooler too.
    let again = app.api().post_json("/api/import/toggl", &headers, &toggl);
    assert_eq!(again.expect(200).json()["unchanged"], 1, "{}", again.text());

    let listed = app.api().get("/api/entries?limit=10", &headers);
    assert_eq!(
        listed.expect(200).json()["entries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let summary = app.api().get(
        "/api/summary?from=2024-03-01T00:00:00Z&to=2024-03-02T00:00:00Z&group_by=day",
        &headers,
    );
    assert_eq!(
        summary.expect(200).json()[0]["hours"],
        2.5,
        "{}",
        summary.text()
    );
    app.api()
        .request("DELETE", &format!("/api/entries/{id}"), &headers, None)
        .expect(204);

    let changed = app.api().post_json(
        "/api/auth/password",
        &headers,
        &json!({"currentPassword": PASSWORD, "newPassword": "another horse battery"}),
    );
    changed.expect(204);
    app.api().get("/api/auth/me", &headers).expect(401);
    app.api().get("/health", &[]).expect(200);
}

/// A statement blocked on a lock gets its 503 at the deadline, and the server gives it up as well: the
/// connection's `statement_timeout` came through the pooler.
#[test]
fn the_servers_statement_timeout_applies_through_pgbouncer() {
    let Some(behind) = Behind::start() else {
        return;
    };
    let id = behind.create_entry();
    let Behind {
        db,
        _bouncer: bouncer,
        app,
        auth,
    } = &behind;

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
