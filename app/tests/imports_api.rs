//! Imports through the real app binary and a real PostgreSQL: Toggl JSON, Tempo JSON and the
//! Toggl detailed-report CSV; idempotence, all-or-nothing, bad inputs, concurrent imports.

mod entries_support;
mod support;

use std::collections::HashMap;

use entries_support::{assert_bad_parameter, multipart, post_raw, problems, Env};
use serde_json::{json, Value};

const TOGGL: &[u8] = include_bytes!("fixtures/toggl_time_entries.json");
const TEMPO: &[u8] = include_bytes!("fixtures/tempo_worklogs.json");
const CSV: &[u8] = include_bytes!("fixtures/toggl_detailed_report.csv");

fn counts(inserted: u64, updated: u64, unchanged: u64) -> Value {
    json!({"inserted": inserted, "updated": updated, "unchanged": unchanged})
}

/// Stored entries by external id: (date, duration, project, description).
fn stored(env: &Env, source: &str) -> HashMap<String, (String, f64, String, String)> {
    entries_support::all_entries(env, &format!("&source={source}"))
        .into_iter()
        .map(|e| {
            (
                e["externalId"].as_str().unwrap().to_owned(),
                (
                    e["date"].as_str().unwrap().to_owned(),
                    e["duration"].as_f64().unwrap(),
                    e["project"].as_str().unwrap().to_owned(),
                    e["description"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

#[test]
fn toggl_import_is_idempotent_and_normalizes_entries() {
    let env = Env::start();
    let response = env.post_raw("/api/import/toggl", "application/json", TOGGL);
    response.expect(200);
    // 8 items: one running (skipped), one repeating another verbatim (counted once).
    assert_eq!(response.json(), counts(6, 0, 0));

    let entries = stored(&env, "toggl");
    assert_eq!(entries.len(), 6);
    assert!(!entries.contains_key("3901234504"), "running entry stored");
    let e = &entries["3901234501"];
    assert_eq!(e.0, "2024-03-09T21:30:00Z");
    assert_eq!(e.1, 1.5);
    assert_eq!(e.2, "Kunde Ä / Website");
    assert_eq!(e.3, "Nachtschicht: Datenbank-Migration 🌙");
    let e = &entries["3901234502"];
    assert_eq!(
        (e.0.as_str(), e.1, e.2.as_str()),
        ("2024-03-31T00:30:00Z", 1.0, "")
    );
    assert_eq!(entries["3901234503"].2, "日本語プロジェクト");
    assert_eq!(entries["3901234503"].3, "");
    assert_eq!(
        entries["3901234506"].3,
        "Code review, \"quoted\" text; with\nnewline"
    );
    // Without project_name the numeric project id is kept.
    assert_eq!(entries["3901234507"].2, "201234567");
    // The two 02:30 of the day the clocks go back are an hour apart.
    assert_eq!(entries["3901234507"].0, "2024-10-27T00:30:00Z");
    assert_eq!(entries["3901234508"].0, "2024-10-27T01:30:00Z");

    // Re-importing the same file touches no row.
    let before = env.row_versions();
    let response = env.post_raw("/api/import/toggl", "application/json", TOGGL);
    assert_eq!(response.json(), counts(0, 0, 6));
    assert_eq!(env.row_versions(), before);

    // One changed entry, one new one: exactly those are written.
    let mut items: Vec<Value> = serde_json::from_slice(TOGGL).unwrap();
    items[2]["description"] = json!("now described");
    items.push(json!({"id": 3901234599_u64, "start": "2024-03-12T10:00:00Z", "duration": 900}));
    let response = env.post_json("/api/import/toggl", &Value::Array(items));
    assert_eq!(response.json(), counts(1, 1, 5));
    assert_eq!(stored(&env, "toggl")["3901234503"].3, "now described");
    assert_eq!(env.row_count(), 7);
}

#[test]
fn tempo_import_places_wall_clock_times_with_tz() {
    let env = Env::start();
    let response = env.post_raw(
        "/api/import/tempo?tz=Europe/Berlin",
        "application/json",
        TEMPO,
    );
    response.expect(200);
    // 6 worklogs, one repeated verbatim.
    assert_eq!(response.json(), counts(5, 0, 0));
    let entries = stored(&env, "tempo");
    // Across midnight, and either side of the spring-forward gap (CET, then CEST).
    assert_eq!(
        entries["126"],
        (
            "2024-03-30T22:30:00Z".into(),
            1.5,
            "WEB-12".into(),
            "Déploiement nocturne".into()
        )
    );
    assert_eq!(entries["127"].0, "2024-03-31T00:30:00Z");
    assert_eq!(entries["128"].0, "2024-03-31T01:30:00Z");
    assert_eq!(
        entries["129"],
        (
            "2024-04-01T22:00:00Z".into(),
            0.5,
            "10012".into(),
            String::new()
        )
    );
    assert_eq!(entries["130"].2, "");
    assert_eq!(entries["130"].3, "Встреча с командой 👥");

    // The bare-array form is the same import: nothing changes.
    let page: Value = serde_json::from_slice(TEMPO).unwrap();
    let before = env.row_versions();
    let response = env.post_json("/api/import/tempo?tz=europe/berlin", &page["results"]);
    assert_eq!(response.json(), counts(0, 0, 5));
    assert_eq!(env.row_versions(), before);

    // The same wall-clock times read in another zone are different instants: updates.
    let response = env.post_raw("/api/import/tempo?tz=UTC", "application/json", TEMPO);
    assert_eq!(response.json(), counts(0, 5, 0));
    assert_eq!(stored(&env, "tempo")["127"].0, "2024-03-31T01:30:00Z");
}

#[test]
fn csv_import_reads_the_detailed_report() {
    let env = Env::start();
    let response = env.post_csv("/api/import/csv?tz=Europe/Berlin", CSV);
    response.expect(200);
    // Two identical rows are two entries.
    assert_eq!(response.json(), counts(5, 0, 0));
    let entries = entries_support::all_entries(&env, "&source=toggl-csv");
    let summary: Vec<(&str, f64, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["date"].as_str().unwrap(),
                e["duration"].as_f64().unwrap(),
                e["project"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("2024-03-30T22:30:00Z", 1.25, "Website, Relaunch"),
            ("2024-03-31T00:45:00Z", 0.5, ""),
            ("2024-04-02T07:00:00Z", 0.25, "Intern"),
            ("2024-04-02T07:00:00Z", 0.25, "Intern"),
            ("2024-04-03T12:00:00Z", 2.5, "Website, Relaunch"),
        ]
    );
    assert_eq!(
        entries[0]["description"],
        "Startseite \"Hero\" überarbeiten"
    );
    assert_eq!(
        entries[4]["description"],
        "Notizen:\r\n- Zeile eins\r\n- Zeile zwei"
    );
    let ids: std::collections::HashSet<&str> = entries
        .iter()
        .map(|e| e["externalId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);

    let before = env.row_versions();
    let response = env.post_csv("/api/import/csv?tz=Europe/Berlin", CSV);
    assert_eq!(response.json(), counts(0, 0, 5));
    assert_eq!(env.row_versions(), before);

    // An edited description keeps the entry (same user and times): an update.
    let edited = String::from_utf8(CSV.to_vec())
        .unwrap()
        .replace("Standup über die Zeitumstellung", "Standup (verschoben)");
    let response = env.post_csv("/api/import/csv?tz=Europe/Berlin", edited.as_bytes());
    assert_eq!(response.json(), counts(0, 1, 4));
}

#[test]
fn invalid_files_are_refused_whole_with_every_problem() {
    let env = Env::start();
    let toggl = json!([
        {"id": 1, "start": "2024-03-10T09:00:00Z", "duration": 60},
        {"id": 2, "start": "10.03.2024 09:00", "duration": "60"},
        {"id": 3, "start": "2024-03-10T09:00:00Z", "duration": 60, "description": "x".repeat(10_001)},
        {"id": 1, "start": "2024-03-10T09:00:00Z", "duration": 120},
        42
    ]);
    // In file order, the repeated id included (it is found last).
    let response = env.post_json("/api/import/toggl", &toggl);
    let listed = problems(&response);
    assert_eq!(
        listed,
        [
            (Some(1), None, Some("duration".into())),
            (Some(1), None, Some("start".into())),
            (Some(2), None, Some("description".into())),
            (Some(3), None, Some("id".into())),
            (Some(4), None, None),
        ]
    );
    assert_eq!(response.json()["error"]["total"], 5);

    let tempo = json!({"results": [
        {"tempoWorklogId": 1, "timeSpentSeconds": 60, "startDate": "2024-03-10"},
        {"tempoWorklogId": 2, "timeSpentSeconds": -60, "startDate": "2024-02-30"}
    ]});
    let listed = problems(&env.post_json("/api/import/tempo", &tempo));
    assert_eq!(
        listed,
        [
            (Some(1), None, Some("timeSpentSeconds".into())),
            (Some(1), None, Some("startDate".into())),
        ]
    );

    let csv = "Start date,Start time,Duration,Project\r\n\
               2024-03-10,09:00:00,01:00:00,ok\r\n\
               2024-03-10,09:00:00,one hour,bad duration\r\n\
               2024-03-10,09:00:00\r\n\
               2024-13-10,09:00:00,01:00:00,bad date\r\n";
    let listed = problems(&env.post_csv("/api/import/csv", csv.as_bytes()));
    assert_eq!(
        listed,
        [
            (None, Some(3), Some("Duration".into())),
            (None, Some(4), None),
            (None, Some(5), Some("Start date".into())),
        ]
    );
    let listed = problems(&env.post_csv("/api/import/csv", b"Name,Hours\r\nx,1\r\n"));
    assert_eq!(listed, [(None, Some(1), None)]);

    assert_eq!(env.row_count(), 0, "an invalid import wrote rows");
}

#[test]
fn bad_requests_name_what_is_wrong() {
    let env = Env::start();
    let json = "application/json";
    assert_bad_parameter(
        &env.post_raw("/api/import/tempo?tz=Mars/Olympus", json, TEMPO),
        "tz",
    );
    assert_bad_parameter(
        &env.post_raw("/api/import/tempo?tz=UTC%2B3", json, TEMPO),
        "tz",
    );
    assert_bad_parameter(&env.post_csv("/api/import/csv?tz=", CSV), "tz");
    assert_bad_parameter(
        &env.post_raw("/api/import/toggl?dry_run=1", json, TOGGL),
        "dry_run",
    );
    assert_bad_parameter(
        &env.post_raw("/api/import/tempo?timezone=UTC", json, TEMPO),
        "timezone",
    );

    let response = env.post_raw("/api/import/toggl", json, b"[{\"id\": 1,");
    response.expect(400);
    assert_eq!(response.error_code(), "malformed_json");
    let response = env.post_raw("/api/import/toggl", "text/csv", TOGGL);
    response.expect(415);
    let response = env.post_raw("/api/import/csv", "text/csv", CSV);
    response.expect(415);
    let (content_type, body) = multipart("upload", "report.csv", CSV);
    let response = env.post_raw("/api/import/csv", &content_type, &body);
    response.expect(400);
    assert_eq!(response.json()["error"]["field"], "file");
    let response = env.post_raw(
        "/api/import/csv",
        "multipart/form-data; boundary=abc",
        b"--abc\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end",
    );
    response.expect(400);
    let response = env.post_json("/api/import/toggl", &json!({"entries": []}));
    assert_eq!(problems(&response), [(None, None, None)]);

    // Over 10 MiB is refused; a JSON import may exceed the 1 MiB limit of ordinary bodies.
    let big = vec![b' '; 10 * 1024 * 1024 + 1];
    env.post_raw("/api/import/toggl", json, &big).expect(413);
    let mut items = Vec::new();
    for i in 0..8_000_u64 {
        items.push(json!({"id": i + 1, "start": "2024-03-10T09:00:00Z", "duration": 60,
                          "description": "a fairly long description to make the body bigger than one mebibyte"}));
    }
    let body = serde_json::to_vec(&items).unwrap();
    assert!(body.len() > 1024 * 1024);
    let response = env.post_raw("/api/import/toggl", json, &body);
    assert_eq!(response.json(), counts(8_000, 0, 0));

    let anonymous = env.app.api().request(
        "POST",
        "/api/import/toggl",
        &[("Content-Type", json)],
        Some(TOGGL),
    );
    anonymous.expect(401);
    assert_eq!(env.row_count(), 8_000);
}

/// A Toggl export of `ids` with content that depends on `version`.
fn toggl_file(ids: impl Iterator<Item = u64>, version: u32) -> Vec<u8> {
    let items: Vec<Value> = ids
        .map(|id| {
            json!({"id": id, "start": "2024-01-01T00:00:00Z", "duration": 60 * (id % 90 + 1),
                   "description": format!("entry {id} v{version}"), "project_name": "Ω"})
        })
        .collect();
    serde_json::to_vec(&items).unwrap()
}

#[test]
fn concurrent_imports_from_two_app_processes_neither_duplicate_nor_fail() {
    let env = Env::start();
    let second = env.second_app();
    const N: u64 = 3_000;

    for version in 0..3 {
        let file = toggl_file(1..=N, version);
        let results: Vec<Value> = std::thread::scope(|scope| {
            let handles: Vec<_> = [&env.app, &second]
                .into_iter()
                .map(|app| {
                    let file = &file;
                    let auth = &env.auth;
                    scope.spawn(move || {
                        let response =
                            post_raw(app, auth, "/api/import/toggl", "application/json", file);
                        response.expect(200);
                        response.json()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let total = |field: &str| {
            results
                .iter()
                .map(|r| r[field].as_u64().unwrap())
                .sum::<u64>()
        };
        for r in &results {
            let sum: u64 = ["inserted", "updated", "unchanged"]
                .iter()
                .map(|f| r[*f].as_u64().unwrap())
                .sum();
            assert_eq!(sum, N, "{r}");
        }
        // Each entry is written by exactly one of the two; the other finds it done.
        if version == 0 {
            assert_eq!(total("inserted"), N, "{results:?}");
        } else {
            assert_eq!((total("inserted"), total("updated")), (0, N), "{results:?}");
        }
        assert_eq!(env.row_count(), N as i64);
    }

    // Overlapping files whose items come in opposite orders: no deadlock surfaces.
    let forward = toggl_file(1..=N, 7);
    let backward = toggl_file((N / 2..=N + N / 2).rev(), 8);
    std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            post_raw(
                &env.app,
                &env.auth,
                "/api/import/toggl",
                "application/json",
                &forward,
            )
            .status
        });
        let b = scope.spawn(|| {
            post_raw(
                &second,
                &env.auth,
                "/api/import/toggl",
                "application/json",
                &backward,
            )
            .status
        });
        assert_eq!((a.join().unwrap(), b.join().unwrap()), (200, 200));
    });
    assert_eq!(env.row_count(), (N + N / 2) as i64);
    assert_eq!(
        env.db.psql("SELECT count(*) FROM (SELECT external_id FROM time_entries GROUP BY 1 HAVING count(*) > 1) d"),
        "0"
    );
}

#[test]
fn imports_belong_to_the_caller() {
    let env = Env::start();
    let bob = entries_support::new_user(&env.app, "bob@example.com");
    env.post_raw("/api/import/toggl", "application/json", TOGGL)
        .expect(200);
    // The same file for another user: separate entries, all inserted.
    let response = post_raw(
        &env.app,
        &bob,
        "/api/import/toggl",
        "application/json",
        TOGGL,
    );
    assert_eq!(response.json(), counts(6, 0, 0));
    assert_eq!(env.row_count(), 12);
    let bobs = env
        .app
        .api()
        .get("/api/entries", &[("Authorization", &bob)]);
    assert_eq!(bobs.json()["entries"].as_array().unwrap().len(), 6);
}
