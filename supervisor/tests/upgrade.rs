//! A rolling upgrade: replicas of a newer build migrate the schema while a replica of the older build keeps
//! serving, and an older replica that restarts afterwards refuses the newer database instead of running on it.
//!
//! The newer build is this build's migrations plus one more, applied through the supervisor's library exactly as
//! its binary would; the older build is this build's binaries. The added migration is expand-only (a nullable
//! column and an index), as any migration must be that runs while the previous release still serves.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use refinery::Migration;
use serde_json::json;
use supervisor::state::State;
use testkit::{Database, Endpoint, Launch, Request};

/// What the traffic against the older replica saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU32,
    failed: AtomicU32,
}

/// Creates and lists entries as one user until `stop`, counting every answer.
fn serve_traffic(api: Endpoint, token: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str())];
    let mut n = 0u32;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let entry = json!({"source": "upgrade", "externalId": format!("e{n}"),
                           "date": "2026-11-30T09:00:00Z", "duration": 0.5});
        let create = Request::new("POST", "/api/entries")
            .headers(&headers)
            .header("Content-Type", "application/json")
            .body(entry.to_string().as_bytes());
        let list = Request::get("/api/entries?limit=5").headers(&headers);
        for request in [create, list] {
            let counter = match api.send(request) {
                Ok(r) if r.status < 300 => &tally.ok,
                _ => &tally.failed,
            };
            counter.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[test]
fn a_newer_build_migrates_while_the_older_serves_and_the_older_then_refuses_to_start() {
    let db = Database::start();
    let older = Launch::supervisor_app(&db.url()).spawn();
    older.wait_live();
    let api = older.api();
    api.post_json(
        "/api/auth/register",
        &[],
        &json!({"email": "ada@example.com", "password": "correct horse battery"}),
    )
    .expect(201);
    let login = api.post_json(
        "/api/auth/login",
        &[],
        &json!({"email": "ada@example.com", "password": "correct horse battery"}),
    );
    login.expect(200);
    let token = login.json()["token"].as_str().unwrap().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let traffic = {
        let (api, stop, tally) = (api, stop.clone(), tally.clone());
        std::thread::spawn(move || serve_traffic(api, token, stop, tally))
    };
    testkit::wait_for("traffic to flow", Duration::from_secs(10), || {
        (tally.ok.load(Ordering::Acquire) >= 20).then_some(())
    });

    // Three replicas of the newer build start at once.
    let mut newer = supervisor::migrate::embedded();
    let next = newer.last().map_or(1, |m| m.version() + 1);
    newer.push(
        Migration::unapplied(
            &format!("V{next}__entry_billable"),
            "ALTER TABLE time_entries ADD COLUMN billable boolean;\n\
             CREATE INDEX time_entries_billable_idx ON time_entries (user_id, date) WHERE billable;",
        )
        .expect("a well-formed migration"),
    );
    let before = tally.ok.load(Ordering::Acquire);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let versions = runtime.block_on(async {
        let config = ::common::db::DbConfig::parse(&db.url()).unwrap();
        let mut replicas = tokio::task::JoinSet::new();
        for _ in 0..3 {
            let (config, newer) = (config.clone(), newer.clone());
            replicas.spawn(async move {
                let mut client = config.connect(Duration::from_secs(10)).await.unwrap();
                let state = State::new();
                supervisor::migrate::migrate(&mut client, &newer, Duration::from_secs(60), &state)
                    .await
            });
        }
        replicas.join_all().await
    });
    for version in versions {
        assert_eq!(version, Ok(i64::from(next)));
    }
    let during = tally.ok.load(Ordering::Acquire);
    testkit::wait_for(
        "traffic to go on after the upgrade",
        Duration::from_secs(10),
        || (tally.ok.load(Ordering::Acquire) >= during + 20).then_some(()),
    );
    stop.store(true, Ordering::Release);
    traffic.join().unwrap();
    let (ok, failed) = (
        tally.ok.load(Ordering::Acquire),
        tally.failed.load(Ordering::Acquire),
    );
    eprintln!(
        "older replica: {ok} requests answered, {failed} failed ({} before the upgrade)",
        before
    );
    assert_eq!(
        failed, 0,
        "the older replica failed requests across the upgrade"
    );
    assert_eq!(
        db.psql(&format!(
            "SELECT count(*) FROM refinery_schema_history WHERE version = {next}"
        )),
        "1"
    );

    // An older replica restarting now refuses the newer database, in one line, and starts nothing.
    let refused = Launch::supervisor_migrate(&db.url()).run(Duration::from_secs(30));
    refused.assert_code(65);
    let line = refused.last_line();
    assert!(
        line.contains(&format!("V{next}")) && line.contains("run a newer image"),
        "{line}"
    );
    // The older replica still running is untouched by that.
    api.get("/livez", &[]).expect(200);
    drop(older);
}
