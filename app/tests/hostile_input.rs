//! Hostile and ambiguous input through the real app binary and a real PostgreSQL: the worst
//! 10 MiB imports stay within the memory bound (measured from the app process's own peak
//! RSS), a NUL character in any kind of text field is a 400 naming the field, and ambiguous
//! JSON (repeated keys, `-0.0`, an array for an object) is refused or normalised.

mod entries_support;
mod support;

use std::time::Duration;

use entries_support::{multipart, Env};
use serde_json::{json, Value};
use testkit::Response;

const MIB: usize = 1024 * 1024;
/// The contract's bound on what one request may add to the app's memory.
const MEMORY_BOUND: u64 = 100 * MIB as u64;
/// A 422 lists at most this many problems.
const LISTED: usize = 100;
/// Most entries one import may hold.
const ENTRIES: usize = 100_000;
const HEADER: &str = "Start date,Start time,Duration";

/// A `/proc/PID/status` figure in bytes.
fn proc_status(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// Runs `request` and returns its response and how far it raised the app's peak RSS above
/// the resident size before it (the kernel's high-water mark is reset first).
fn peak_rise(env: &Env, request: impl FnOnce() -> Response) -> (Response, u64) {
    let pid = env.app.pid();
    // "5" resets VmHWM to the current RSS (proc(5), clear_refs).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("resetting VmHWM");
    let before = proc_status(pid, "VmRSS:");
    let response = request();
    let peak = proc_status(pid, "VmHWM:");
    (response, peak.saturating_sub(before))
}

/// `[item,item,...]` of `size` bytes and `count` items at most, the items made by `item(i)`.
fn json_array(size: usize, count: usize, item: impl Fn(usize) -> String) -> Vec<u8> {
    let mut body = b"[".to_vec();
    for i in 0..count {
        let next = item(i);
        if body.len() + next.len() + 2 > size {
            break;
        }
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(next.as_bytes());
    }
    body.push(b']');
    body
}

/// A CSV body of `size` bytes and `count` rows at most: the header, then rows made by `row(i)`.
fn csv_file(size: usize, count: usize, header: &str, row: impl Fn(usize) -> String) -> Vec<u8> {
    let mut body = format!("{header}\n").into_bytes();
    for i in 0..count {
        let next = row(i);
        if body.len() + next.len() + 1 > size {
            break;
        }
        body.extend_from_slice(next.as_bytes());
        body.push(b'\n');
    }
    body
}

/// POST of a large body, waiting longer than the harness's usual 30 s for the answer: a debug
/// build on a loaded machine takes seconds for 10 MiB of millions of items.
fn post_large(env: &Env, path: &str, content_type: &str, body: &[u8]) -> Response {
    env.app
        .api()
        .with_timeout(Duration::from_secs(300))
        .request(
            "POST",
            path,
            &[("Authorization", &env.auth), ("Content-Type", content_type)],
            Some(body),
        )
}

/// POST of a CSV file as the multipart field `file`, as [`post_large`].
fn post_large_csv(env: &Env, path: &str, csv: &[u8]) -> Response {
    let (content_type, body) = multipart("file", "report.csv", csv);
    post_large(env, path, &content_type, &body)
}

/// Asserts a 422 that lists the first problems and counts at least `min_total`.
#[track_caller]
fn assert_bounded_422(response: &Response, min_total: u64) {
    response.expect(422);
    assert!(
        response.body.len() < 64 * 1024,
        "a {} byte 422",
        response.body.len()
    );
    let error = &response.json()["error"];
    assert_eq!(error["code"], "validation_failed");
    let details = error["details"].as_array().unwrap();
    assert!(!details.is_empty() && details.len() <= LISTED, "{error}");
    let total = error["total"].as_u64().unwrap();
    assert!(total >= min_total, "total {total} < {min_total}");
    assert!(total >= details.len() as u64);
}

#[test]
fn the_worst_imports_within_the_size_limit_stay_within_the_memory_bound() {
    let env = Env::start();
    let upload = 10 * MIB;
    let json_type = "application/json";
    // Warm up the code paths (and the time-zone list) so that one-time costs do not count.
    env.post_raw("/api/import/tempo", json_type, b"[{}]")
        .expect(422);

    let mut rises = Vec::new();
    let mut measure = |name: &str, request: &dyn Fn() -> Response, check: &dyn Fn(&Response)| {
        let started = std::time::Instant::now();
        let (response, rise) = peak_rise(&env, request);
        check(&response);
        eprintln!(
            "{name}: peak RSS rise {} KiB, {:?}",
            rise / 1024,
            started.elapsed()
        );
        rises.push((name.to_owned(), rise));
    };

    // 3.5 million empty items, three problems each.
    let empty_items = json_array(upload, usize::MAX, |_| "{}".to_owned());
    let items = (empty_items.len() / 3) as u64;
    for path in ["/api/import/toggl", "/api/import/tempo"] {
        measure(
            path,
            &|| post_large(&env, path, json_type, &empty_items),
            &|response| assert_bounded_422(response, 3 * items),
        );
    }
    // One object with a million keys (every key is checked for repeats).
    let mut keys = b"[{".to_vec();
    let mut k = 0;
    while keys.len() < upload - 32 {
        keys.extend_from_slice(format!("\"k{k}\":0,").as_bytes());
        k += 1;
    }
    keys.extend_from_slice(b"\"id\":1}]");
    measure(
        "toggl, one object of many keys",
        &|| post_large(&env, "/api/import/toggl", json_type, &keys),
        &|response| assert_bounded_422(response, 2),
    );
    // Rows of empty cells: three problems per three bytes.
    let empty_rows = csv_file(upload - 512, usize::MAX, HEADER, |_| ",,".to_owned());
    measure(
        "csv, empty rows",
        &|| post_large_csv(&env, "/api/import/csv", &empty_rows),
        &|response| assert_bounded_422(response, 3_000_000),
    );
    // Valid but too many entries: one problem, nothing kept past the limit.
    let minimal_rows = csv_file(upload - 512, usize::MAX, HEADER, |i| {
        format!("2024-03-10,{}:{:02},1", i % 24, i % 60)
    });
    measure(
        "csv, 580k minimal rows",
        &|| post_large_csv(&env, "/api/import/csv", &minimal_rows),
        &|response| {
            assert_bounded_422(response, 1);
            assert!(response.text().contains("more than 100000 entries"));
        },
    );
    assert_eq!(env.row_count(), 0, "a refused import wrote rows");

    // The largest imports that succeed: 100,000 minimal entries of each kind.
    let toggl_item =
        |i: usize| format!(r#"{{"id":{i},"start":"2024-03-10T09:00:00Z","duration":60}}"#);
    let toggl = json_array(upload, usize::MAX, toggl_item);
    let toggl_100k = json_array(upload, ENTRIES, toggl_item);
    measure(
        "toggl, 100k entries",
        &|| post_large(&env, "/api/import/toggl", json_type, &toggl_100k),
        &|response| {
            response.expect(200);
            assert_eq!(response.json()["inserted"], ENTRIES);
        },
    );
    let tempo_100k = json_array(upload, ENTRIES, |i| {
        format!(r#"{{"tempoWorklogId":{i},"timeSpentSeconds":60,"startDate":"2024-03-10"}}"#)
    });
    measure(
        "tempo, 100k entries",
        &|| post_large(&env, "/api/import/tempo", json_type, &tempo_100k),
        &|response| {
            response.expect(200);
            assert_eq!(response.json()["inserted"], ENTRIES);
        },
    );
    let csv_100k = csv_file(upload - 512, ENTRIES, HEADER, |i| {
        format!(
            "2024-03-10,{}:{:02}:{:02},1",
            i / 3600 % 24,
            i / 60 % 60,
            i % 60
        )
    });
    measure(
        "csv, 100k entries",
        &|| post_large_csv(&env, "/api/import/csv", &csv_100k),
        &|response| {
            response.expect(200);
            assert_eq!(response.json()["inserted"], ENTRIES);
        },
    );
    // And one more than the limit in a 10 MiB Toggl file is refused whole.
    measure(
        "toggl, 180k minimal entries",
        &|| post_large(&env, "/api/import/toggl", json_type, &toggl),
        &|response| {
            assert_bounded_422(response, 1);
            assert!(response.text().contains("more than 100000 entries"));
        },
    );
    assert_eq!(env.row_count(), 300_000);

    for (name, rise) in &rises {
        assert!(
            *rise <= MEMORY_BOUND,
            "{name} raised the app's peak RSS by {} MiB",
            rise / MIB as u64
        );
    }
    assert!(!env.app.log().contains("panicked"), "{}", env.app.log());
}

/// Asserts a 400 naming `field` for a NUL character.
#[track_caller]
fn assert_nul_refused(response: &Response, field: &str) {
    response.expect(400);
    let error = &response.json()["error"];
    assert_eq!(error["field"], field, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("NUL"),
        "{error}"
    );
}

#[test]
fn a_nul_character_in_any_text_field_is_a_400_naming_it() {
    let env = Env::start();
    let json_type = "application/json";
    let post = |path: &str, body: &str| env.post_raw(path, json_type, body.as_bytes());

    // JSON bodies: the login of the review, and every other kind of body.
    let login = env.app.api().request(
        "POST",
        "/api/auth/login",
        &[("Content-Type", json_type)],
        Some(br#"{"email":"a@b.co\u0000","password":"whatever1"}"#),
    );
    assert_nul_refused(&login, "email");
    let register = env.app.api().request(
        "POST",
        "/api/auth/register",
        &[("Content-Type", json_type)],
        Some(br#"{"email":"new@b.co","password":"pass\u0000word"}"#),
    );
    assert_nul_refused(&register, "password");
    assert_nul_refused(
        &post(
            "/api/entries",
            r#"{"date":"2024-03-10T09:00:00Z","duration":1,"project":"a\u0000"}"#,
        ),
        "project",
    );
    let created = env.post_json(
        "/api/entries",
        &json!({"date": "2024-03-10T09:00:00Z", "duration": 1}),
    );
    created.expect(201);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let patch = env.app.api().request(
        "PATCH",
        &format!("/api/entries/{id}"),
        &[("Authorization", &env.auth), ("Content-Type", json_type)],
        Some(br#"{"description":"x\u0000"}"#),
    );
    assert_nul_refused(&patch, "description");
    // Import items, where nothing else is wrong and where the field is not even read.
    assert_nul_refused(
        &post(
            "/api/import/toggl",
            r#"[{"id":1,"start":"2024-03-10T09:00:00Z","duration":60},
                {"id":2,"start":"2024-03-10T09:00:00Z","duration":60,"description":"\u0000"}]"#,
        ),
        "[1].description",
    );
    assert_nul_refused(
        &post(
            "/api/import/toggl",
            r#"[{"id":1,"start":"2024-03-10T09:00:00Z","duration":60,"tags":["ok","\u0000"]}]"#,
        ),
        "[0].tags[1]",
    );
    assert_nul_refused(
        &post(
            "/api/import/tempo",
            r#"{"results":[{"tempoWorklogId":1,"timeSpentSeconds":60,"startDate":"2024-03-10","issue":{"key":"A-\u0000"}}]}"#,
        ),
        "results[0].issue.key",
    );
    // CSV cells.
    let csv = "Start date,Start time,Duration,Description\r\n\
               2024-03-10,09:00:00,01:00:00,fine\r\n\
               2024-03-10,10:00:00,01:00:00,nul \0 here\r\n";
    let response = env.post_csv("/api/import/csv", csv.as_bytes());
    assert_nul_refused(&response, "Description");
    assert!(response.text().contains("line 3"), "{}", response.text());
    // Query parameters.
    assert_nul_refused(&env.get("/api/entries?project=a%00b"), "project");
    assert_nul_refused(&env.get("/api/summary?tz=UTC%00"), "tz");
    assert_nul_refused(
        &env.post_raw("/api/import/tempo?tz=Europe/Berlin%00", json_type, b"[]"),
        "tz",
    );

    assert_eq!(env.row_count(), 1, "a refused request wrote rows");

    // The published document says so for every text without a stricter rule of its own.
    let document = env.app.api().get("/api/openapi.json", &[]).json();
    let no_nul = r"^[^\u0000]*$";
    let project = document["paths"]["/api/entries"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "project")
        .unwrap();
    assert_eq!(project["schema"]["pattern"], no_nul);
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["Credentials"]["properties"]["password"]["pattern"],
        no_nul
    );
    assert_eq!(
        schemas["NewTimeEntry"]["properties"]["description"]["pattern"],
        no_nul
    );
    assert_eq!(
        schemas["TogglTimeEntry"]["properties"]["description"]["pattern"],
        no_nul
    );
    let log = env.app.log();
    assert!(
        !log.contains("db error") && !log.contains("internal_error"),
        "{log}"
    );
}

#[test]
fn ambiguous_json_is_refused_or_normalised() {
    let env = Env::start();
    let json_type = "application/json";
    let post = |path: &str, body: &str| env.post_raw(path, json_type, body.as_bytes());
    let refused_field = |response: &Response, field: &str| {
        response.expect(400);
        let error = &response.json()["error"];
        assert_eq!(error["field"], field, "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("more than once"),
            "{error}"
        );
    };

    // A key given twice: which one was meant is unknowable, so neither is taken.
    let login = env.app.api().request(
        "POST",
        "/api/auth/login",
        &[("Content-Type", json_type)],
        Some(br#"{"email":"ann@example.com","password":"x","password":"correct horse battery"}"#),
    );
    refused_field(&login, "password");
    refused_field(
        &post(
            "/api/entries",
            r#"{"date":"2024-03-10T09:00:00Z","duration":1,"duration":2}"#,
        ),
        "duration",
    );
    refused_field(
        &post(
            "/api/import/toggl",
            r#"[{"id":1,"start":"2024-03-10T09:00:00Z","duration":60},
                {"id":2,"id":3,"start":"2024-03-10T09:00:00Z","duration":60}]"#,
        ),
        "[1].id",
    );
    refused_field(
        &post(
            "/api/import/tempo",
            r#"{"results":[],"results":[{"tempoWorklogId":1,"timeSpentSeconds":1,"startDate":"2024-03-10"}]}"#,
        ),
        "results",
    );

    // An array where an object is expected is called that, not "Field `[0]`".
    for body in [
        r#"[{"date":"2024-03-10T09:00:00Z","duration":1}]"#,
        r#"["2024-03-10T09:00:00Z", 1]"#,
    ] {
        let response = post("/api/entries", body);
        response.expect(400);
        let error = &response.json()["error"];
        assert_eq!(error["code"], "invalid_body", "{error}");
        assert!(error.get("field").is_none(), "{error}");
        assert!(
            error["message"].as_str().unwrap().contains("not an array"),
            "{error}"
        );
    }
    assert_eq!(env.row_count(), 0);

    // -0.0 is zero: stored and answered as 0, never as -0.0.
    let created = post(
        "/api/entries",
        r#"{"date":"2024-03-10T09:00:00Z","duration":-0.0}"#,
    );
    created.expect(201);
    let positive_zero = |entry: &Value| {
        let duration = entry["duration"].as_f64().unwrap();
        duration == 0.0 && duration.is_sign_positive()
    };
    assert!(positive_zero(&created.json()), "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let patched = env.app.api().request(
        "PATCH",
        &format!("/api/entries/{id}"),
        &[("Authorization", &env.auth), ("Content-Type", json_type)],
        Some(br#"{"duration":-0.0}"#),
    );
    patched.expect(200);
    assert!(positive_zero(&patched.json()), "{}", patched.text());
    // A Toggl id written as 45409.0 is the integer the schema says it may be.
    let imported = post(
        "/api/import/toggl",
        r#"[{"id":45409.0,"start":"2024-03-10T09:00:00Z","duration":-0.0}]"#,
    );
    imported.expect(200);
    assert_eq!(imported.json()["inserted"], 1);
    let stored = env.db.psql(
        "SELECT external_id || ' ' || (duration::text) FROM time_entries WHERE source = 'toggl'",
    );
    assert_eq!(stored, "45409 0");
    let signs = env
        .db
        .psql("SELECT count(*) FROM time_entries WHERE duration::text LIKE '-%'");
    assert_eq!(signs, "0");
    let listed: Value = env.get("/api/entries").json();
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(positive_zero), "{listed}");
}

#[test]
fn a_csv_nul_in_the_header_names_the_header_row() {
    let env = Env::start();
    let (content_type, body) = multipart("file", "r.csv", b"Start date,Start\0time,Duration\n");
    let response = env.post_raw("/api/import/csv", &content_type, &body);
    assert_nul_refused(&response, "header row");
}
