//! Time entries through the real app binary and a real PostgreSQL: CRUD, ownership, validation,
//! keyset pagination and its index.

mod entries_support;
mod support;

use entries_support::{all_entries, assert_bad_parameter, new_user, problems, Env};
use serde_json::{json, Value};
use testkit::Response;

#[test]
fn create_read_patch_delete() {
    let env = Env::start();
    let response = env.post_json(
        "/api/entries",
        &json!({"date": "2024-03-10T09:00:00+01:00", "duration": 1.5, "project": "Ünïcode ✓", "description": "Planung"}),
    );
    response.expect(201);
    let created = response.json();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["source"], "manual");
    assert_eq!(created["externalId"], id.as_str());
    assert_eq!(created["date"], "2024-03-10T08:00:00Z");
    assert_eq!(created["duration"], 1.5);
    assert_eq!(created["project"], "Ünïcode ✓");
    assert_eq!(created["createdAt"], created["updatedAt"]);
    for field in [
        "id",
        "source",
        "externalId",
        "date",
        "duration",
        "project",
        "description",
        "createdAt",
        "updatedAt",
    ] {
        assert!(
            created.get(field).is_some(),
            "{field} missing from {created}"
        );
    }

    let path = format!("/api/entries/{id}");
    assert_eq!(env.get(&path).expect(200).json(), created);

    // A patch that changes nothing leaves updatedAt alone.
    let same = patch(&env, &env.auth, &path, &json!({"project": "Ünïcode ✓"}));
    same.expect(200);
    assert_eq!(same.json(), created);

    let changed = patch(
        &env,
        &env.auth,
        &path,
        &json!({"duration": 2, "description": ""}),
    );
    changed.expect(200);
    let changed = changed.json();
    assert_eq!(changed["duration"], 2.0);
    assert_eq!(changed["description"], "");
    assert_eq!(changed["project"], "Ünïcode ✓");
    assert_ne!(changed["updatedAt"], created["updatedAt"]);

    let deleted = env
        .app
        .api()
        .request("DELETE", &path, &[("Authorization", &env.auth)], None);
    deleted.expect(204);
    env.get(&path).expect(404);
    env.app
        .api()
        .request("DELETE", &path, &[("Authorization", &env.auth)], None)
        .expect(404);
}

fn patch(env: &Env, auth: &str, path: &str, body: &Value) -> Response {
    env.app.api().request(
        "PATCH",
        path,
        &[
            ("Authorization", auth),
            ("Content-Type", "application/json"),
        ],
        Some(body.to_string().as_bytes()),
    )
}

#[test]
fn other_users_entries_are_not_found() {
    let env = Env::start();
    let bob = new_user(&env.app, "bob@example.com");
    let created = env
        .post_json(
            "/api/entries",
            &json!({"date": "2024-03-10T09:00:00Z", "duration": 1}),
        )
        .expect(201)
        .json();
    let path = format!("/api/entries/{}", created["id"].as_str().unwrap());
    env.app
        .api()
        .get(&path, &[("Authorization", &bob)])
        .expect(404);
    patch(&env, &bob, &path, &json!({"duration": 3})).expect(404);
    env.app
        .api()
        .request("DELETE", &path, &[("Authorization", &bob)], None)
        .expect(404);
    let listed = env
        .app
        .api()
        .get("/api/entries", &[("Authorization", &bob)])
        .expect(200)
        .json();
    assert_eq!(listed, json!({"entries": [], "nextCursor": null}));
    // Untouched by Bob's attempts.
    assert_eq!(env.get(&path).expect(200).json(), created);

    env.app.api().get(&path, &[]).expect(401);
    env.get("/api/entries/not-a-uuid").expect(404);
    env.get("/api/entries/00000000-0000-0000-0000-000000000000")
        .expect(404);
}

#[test]
fn bad_bodies_are_named_and_duplicates_conflict() {
    let env = Env::start();
    let listed = problems(&env.post_json(
        "/api/entries",
        &json!({"date": "1066-10-14T09:00:00Z", "duration": -1, "source": "Bad Source", "externalId": "", "description": "x".repeat(10_001)}),
    ));
    let fields: Vec<&str> = listed.iter().map(|p| p.2.as_deref().unwrap()).collect();
    assert_eq!(
        fields,
        ["date", "duration", "source", "externalId", "description"]
    );

    for (body, field) in [
        (json!({"duration": 1}), "date"),
        (json!({"date": "2024-03-10T09:00:00Z"}), "duration"),
        (json!({"date": "2024-03-10", "duration": 1}), "date"),
        (
            json!({"date": "2024-03-10T09:00:00Z", "duration": "1h"}),
            "duration",
        ),
        (
            json!({"date": "2024-03-10T09:00:00Z", "duration": 1, "project": ["a"]}),
            "project",
        ),
    ] {
        let response = env.post_json("/api/entries", &body);
        response.expect(400);
        assert_eq!(response.json()["error"]["field"], field, "{body}");
    }
    let response = env.post_json(
        "/api/entries",
        &json!({"date": "2024-03-10T09:00:00Z", "duration": 1, "colour": "red"}),
    );
    response.expect(400);
    assert!(response.text().contains("colour"), "{}", response.text());
    env.app
        .api()
        .request(
            "POST",
            "/api/entries",
            &[
                ("Authorization", &env.auth),
                ("Content-Type", "application/json"),
            ],
            Some(b"{\"date\":"),
        )
        .expect(400);

    let entry = json!({"date": "2024-03-10T09:00:00Z", "duration": 1, "source": "jira", "externalId": "PROJ-1#7"});
    env.post_json("/api/entries", &entry).expect(201);
    let response = env.post_json("/api/entries", &entry);
    response.expect(409);
    assert_eq!(response.error_code(), "duplicate_entry");

    let other = env
        .post_json(
            "/api/entries",
            &json!({"date": "2024-03-10T10:00:00Z", "duration": 1, "source": "jira"}),
        )
        .expect(201)
        .json();
    let path = format!("/api/entries/{}", other["id"].as_str().unwrap());
    patch(&env, &env.auth, &path, &json!({"externalId": "PROJ-1#7"})).expect(409);
    assert_eq!(
        problems(&patch(&env, &env.auth, &path, &json!({}))),
        [(None, None, None)]
    );
    assert_eq!(
        problems(&patch(&env, &env.auth, &path, &json!({"duration": 100000}))),
        [(None, None, Some("duration".to_owned()))]
    );
    assert_eq!(env.row_count(), 2);
}

/// Inserts `n` entries for the user `email` directly: `n / per_date` distinct dates, so many
/// entries share a date and only the id orders them.
fn seed(env: &Env, email: &str, n: u32, per_date: u32) {
    env.db.psql(&format!(
        "INSERT INTO time_entries (user_id, source, external_id, date, duration, project)
         SELECT u.id, CASE WHEN g % 3 = 0 THEN 'toggl' ELSE 'tempo' END, 'seed-' || g,
                timestamptz '2024-01-01 00:00Z' + ((g / {per_date}) * interval '1 hour'),
                0.25, CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END
         FROM users u, generate_series(0, {n} - 1) g WHERE u.email = '{email}'"
    ));
}

fn key(entry: &Value) -> (String, String) {
    (
        entry["date"].as_str().unwrap().to_owned(),
        entry["id"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn pages_walk_equal_dates_in_order_without_repeats() {
    let env = Env::start();
    seed(&env, "ann@example.com", 257, 10);

    let mut seen: Vec<(String, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 100, "pagination did not end");
        let path = match &cursor {
            Some(c) => format!("/api/entries?limit=7&cursor={c}"),
            None => "/api/entries?limit=7".to_owned(),
        };
        let page = env.get(&path).expect(200).json();
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 7);
        seen.extend(entries.iter().map(key));
        match page["nextCursor"].as_str() {
            Some(c) => {
                assert_eq!(entries.len(), 7);
                cursor = Some(c.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(pages, 257_usize.div_ceil(7));
    assert_eq!(seen.len(), 257);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "not in (date, id) order, or repeated");

    // Default and maximum page sizes.
    let page = env.get("/api/entries").expect(200).json();
    assert_eq!(page["entries"].as_array().unwrap().len(), 100);
    assert!(page["nextCursor"].is_string());
    let page = env.get("/api/entries?limit=500").expect(200).json();
    assert_eq!(page["entries"].as_array().unwrap().len(), 257);
    assert!(page["nextCursor"].is_null());

    // Filters combine with the cursor; from/to are half-open.
    let from = "2024-01-01T03:00:00Z";
    let to = "2024-01-01T08:00:00Z";
    let filtered = all_entries(
        &env,
        &format!("&from={from}&to={to}&source=tempo&project=even"),
    );
    assert!(!filtered.is_empty());
    for e in &filtered {
        let date = e["date"].as_str().unwrap();
        assert!(date >= from && date < to, "{date}");
        assert_eq!(
            (e["source"].as_str(), e["project"].as_str()),
            (Some("tempo"), Some("even"))
        );
    }
    let expected: i64 = env
        .db
        .psql(&format!(
            "SELECT count(*) FROM time_entries WHERE date >= '{from}' AND date < '{to}' AND source = 'tempo' AND project = 'even'"
        ))
        .parse()
        .unwrap();
    assert_eq!(filtered.len() as i64, expected);
    let mut small_pages = Vec::new();
    let mut cursor = String::new();
    for _ in 0..100 {
        let page = env
            .get(&format!(
                "/api/entries?limit=2&from={from}&to={to}&source=tempo&project=even{cursor}"
            ))
            .expect(200)
            .json();
        small_pages.extend(page["entries"].as_array().unwrap().iter().map(key));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(small_pages, filtered.iter().map(key).collect::<Vec<_>>());
}

#[test]
fn deep_pages_are_served_by_the_index() {
    let env = Env::start();
    seed(&env, "ann@example.com", 50_000, 3);
    new_user(&env.app, "bob@example.com");
    seed(&env, "bob@example.com", 50_000, 3);
    env.db.psql("ANALYZE time_entries");
    let ann = env
        .db
        .psql("SELECT id FROM users WHERE email = 'ann@example.com'");
    // The statement the app runs for a page after a cursor, with a cursor deep in the data,
    // planned both ways the server may plan a prepared statement.
    for mode in ["force_custom_plan", "force_generic_plan"] {
        let plan = env.db.psql(&format!(
            "SET plan_cache_mode = {mode};
             PREPARE page(uuid, timestamptz, uuid, bigint) AS
               SELECT id, source, external_id, date, duration, project, description, created_at, updated_at
               FROM time_entries WHERE user_id = $1 AND (date, id) > ($2, $3) ORDER BY date, id LIMIT $4;
             EXPLAIN (COSTS OFF) EXECUTE page('{ann}', '2025-09-01T00:00:00Z', '00000000-0000-0000-0000-000000000000', 101)"
        ));
        assert!(
            plan.contains("Index Scan using time_entries_user_date_id_idx"),
            "{mode}: {plan}"
        );
        assert!(plan.contains("ROW(date, id) >"), "{mode}: {plan}");
        assert!(
            !plan.contains("Sort") && !plan.contains("Filter"),
            "{mode}: {plan}"
        );
    }

    // And the API's deep page agrees with a direct query.
    let page = env
        .get("/api/entries?limit=3&from=2025-09-01T00:00:00Z")
        .expect(200)
        .json();
    let ids: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let direct = env.db.psql(
        "SELECT string_agg(id::text, ',') FROM (
           SELECT t.id FROM time_entries t JOIN users u ON u.id = t.user_id
           WHERE u.email = 'ann@example.com' AND t.date >= '2025-09-01T00:00:00Z'
           ORDER BY t.date, t.id LIMIT 3) x",
    );
    assert_eq!(ids.join(","), direct);
}

#[test]
fn every_bad_list_parameter_is_a_400_naming_it() {
    let env = Env::start();
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=-5", "limit"),
        ("limit=many", "limit"),
        ("limit=1&limit=2", "limit"),
        ("from=2024-01-01", "from"),
        ("from=2024-01-01T00:00:00", "from"),
        ("to=tomorrow", "to"),
        ("from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z", "to"),
        ("source=Toggl%20Track", "source"),
        ("project=a%00b", "project"),
        ("cursor=not-a-cursor", "cursor"),
        ("offset=100", "offset"),
        ("to=9999-12-31T23:59:59-23:59", "to"),
    ] {
        let response = env.get(&format!("/api/entries?{query}"));
        assert_eq!(response.status, 400, "{query}: {}", response.text());
        assert_bad_parameter(&response, name);
    }
}

/// Every `$ref` in `value` names something under `components` of `document`.
fn assert_refs_resolve(document: &Value, value: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let pointer = reference.strip_prefix('#').expect("local reference");
                assert!(
                    document.pointer(pointer).is_some(),
                    "unresolved {reference}"
                );
            }
            map.values().for_each(|v| assert_refs_resolve(document, v));
        }
        Value::Array(items) => items.iter().for_each(|v| assert_refs_resolve(document, v)),
        _ => {}
    }
}

#[test]
fn openapi_documents_the_entry_routes() {
    let env = Env::start();
    let document = env
        .app
        .api()
        .get("/api/openapi.json", &[])
        .expect(200)
        .json();
    for (path, methods) in [
        ("/api/entries", &["get", "post"][..]),
        ("/api/entries/{id}", &["get", "patch", "delete"][..]),
        ("/api/import/toggl", &["post"][..]),
        ("/api/import/tempo", &["post"][..]),
        ("/api/import/csv", &["post"][..]),
        ("/api/summary", &["get"][..]),
    ] {
        for method in methods {
            let operation = &document["paths"][path][method];
            assert!(operation.is_object(), "{method} {path} undocumented");
            assert!(
                operation["security"].is_array(),
                "{method} {path}: no security"
            );
            for status in ["401", "503"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path}: no {status}"
                );
            }
        }
    }
    for schema in [
        "TimeEntry",
        "NewTimeEntry",
        "TimeEntryChanges",
        "TimeEntryPage",
        "ImportResult",
        "SummaryRow",
    ] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    assert_refs_resolve(&document, &document);
}
