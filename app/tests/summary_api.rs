//! Summaries through the real app binary: days cut in the caller's time zone (DST included),
//! projects and sources, the half-open range, and bad parameters.

mod entries_support;
mod support;

use entries_support::{assert_bad_parameter, new_user, Env};
use serde_json::{json, Value};

fn create(env: &Env, date: &str, duration: f64, project: &str, source: &str) {
    env.post_json(
        "/api/entries",
        &json!({"date": date, "duration": duration, "project": project, "source": source}),
    )
    .expect(201);
}

fn summary(env: &Env, query: &str) -> Value {
    env.get(&format!("/api/summary?{query}")).expect(200).json()
}

#[test]
fn days_follow_the_time_zone_across_midnight_and_dst() {
    let env = Env::start();
    // Berlin: 23:30 on 30 March (CET), 00:30 on 31 March (CET), 23:30 on 31 March (CEST, after
    // the clocks went forward), 00:30 on 1 April (CEST). A fixed +01:00 would put the last one
    // on 31 March.
    create(&env, "2024-03-30T22:30:00Z", 1.0, "Alpha", "manual");
    create(&env, "2024-03-30T23:30:00Z", 2.0, "Alpha", "manual");
    create(&env, "2024-03-31T21:30:00Z", 0.5, "Beta", "manual");
    create(&env, "2024-03-31T22:30:00Z", 4.0, "", "jira");
    // Someone else's hours never count.
    let bob = new_user(&env.app, "bob@example.com");
    env.app
        .api()
        .post_json(
            "/api/entries",
            &[("Authorization", &bob)],
            &json!({"date": "2024-03-31T12:00:00Z", "duration": 8}),
        )
        .expect(201);

    assert_eq!(
        summary(&env, "tz=Europe/Berlin&group_by=day"),
        json!([
            {"key": "2024-03-30", "hours": 1.0, "entries": 1},
            {"key": "2024-03-31", "hours": 2.5, "entries": 2},
            {"key": "2024-04-01", "hours": 4.0, "entries": 1}
        ])
    );
    assert_eq!(
        summary(&env, "tz=UTC"),
        json!([
            {"key": "2024-03-30", "hours": 3.0, "entries": 2},
            {"key": "2024-03-31", "hours": 4.5, "entries": 2}
        ])
    );
    // West of UTC the whole set falls on two local days.
    assert_eq!(
        summary(&env, "tz=America/New_York")
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["key"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ["2024-03-30", "2024-03-31"]
    );
    assert_eq!(
        summary(&env, "group_by=project"),
        json!([
            {"key": "", "hours": 4.0, "entries": 1},
            {"key": "Alpha", "hours": 3.0, "entries": 2},
            {"key": "Beta", "hours": 0.5, "entries": 1}
        ])
    );
    assert_eq!(
        summary(&env, "group_by=source&tz=Asia/Tokyo"),
        json!([
            {"key": "jira", "hours": 4.0, "entries": 1},
            {"key": "manual", "hours": 3.5, "entries": 3}
        ])
    );
    // Half-open: an entry exactly at `from` counts, one exactly at `to` does not.
    assert_eq!(
        summary(
            &env,
            "group_by=project&from=2024-03-30T23:30:00Z&to=2024-03-31T22:30:00Z"
        ),
        json!([
            {"key": "Alpha", "hours": 2.0, "entries": 1},
            {"key": "Beta", "hours": 0.5, "entries": 1}
        ])
    );
    assert_eq!(summary(&env, "from=2030-01-01T00:00:00Z"), json!([]));
}

#[test]
fn every_bad_summary_parameter_is_a_400_naming_it() {
    let env = Env::start();
    for (query, name) in [
        ("tz=Mars/Olympus_Mons", "tz"),
        ("tz=UTC%2B3", "tz"),
        ("tz=", "tz"),
        ("group_by=week", "group_by"),
        ("group_by=day&group_by=project", "group_by"),
        ("from=yesterday", "from"),
        ("to=2024-01-01", "to"),
        ("from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z", "to"),
        ("timezone=UTC", "timezone"),
        ("from=9999-12-31T23:00:00-01:00", "from"),
    ] {
        let response = env.get(&format!("/api/summary?{query}"));
        assert_eq!(response.status, 400, "{query}: {}", response.text());
        assert_bad_parameter(&response, name);
    }
    env.app.api().get("/api/summary", &[]).expect(401);
}
