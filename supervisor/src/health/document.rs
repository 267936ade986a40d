//! The answers' bodies: the `application/health+json` document (IETF health-check draft) and the verbose
//! text of `/livez` and `/readyz`.

use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::health::{CheckName, Checks, Document, Entry, LockHolder, Reason, Status};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::checks::{Probe, Snapshot, Verdict};
use crate::state::Phase;

/// RFC 3339 in UTC to the second, e.g. `2026-01-21T00:06:47Z`.
fn rfc3339(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_default()
}

/// The worst readiness status over the checks that are not excluded.
pub fn overall(snapshot: &Snapshot, excluded: &[CheckName]) -> Status {
    CheckName::ALL
        .into_iter()
        .filter(|c| !excluded.contains(c))
        .map(|c| snapshot.verdict(c, Probe::Ready).status)
        .max()
        .unwrap_or(Status::Pass)
}

/// Everything a document is made of, as it appears in it (times to the second, values rounded as printed):
/// equal keys give identical documents.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DocumentKey {
    details: bool,
    excluded: [bool; 3],
    now_secs: u64,
    phase: Phase,
    verdicts: [Verdict; 3],
    /// pid, uptime in tenths of a second.
    child: Option<(i32, u64)>,
    /// rssBytes, time.
    child_reading: Option<(Option<u64>, u64)>,
    /// latency in microseconds, time.
    postgres: Option<(Option<u64>, u64)>,
    restarts: u32,
    migration_version: Option<i64>,
    /// The lock holder's pid and how long it has held the lock, in seconds.
    lock_holder: Option<(i32, Option<u64>)>,
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn uptime_tenths(snapshot: &Snapshot, started: std::time::Instant) -> f64 {
    (snapshot
        .now
        .saturating_duration_since(started)
        .as_secs_f64()
        * 10.0)
        .round()
}

fn latency_micros(latency: std::time::Duration) -> f64 {
    (latency.as_secs_f64() * 1e6).round()
}

impl DocumentKey {
    fn of(snapshot: &Snapshot, excluded: &[CheckName], details: bool, now: SystemTime) -> Self {
        DocumentKey {
            details,
            excluded: CheckName::ALL.map(|c| excluded.contains(&c)),
            now_secs: unix_secs(now),
            phase: snapshot.phase,
            verdicts: CheckName::ALL.map(|c| snapshot.verdict(c, Probe::Ready)),
            child: snapshot
                .child
                .map(|c| (c.pid, uptime_tenths(snapshot, c.started) as u64)),
            child_reading: snapshot
                .current_child_reading()
                .map(|r| (r.rss_bytes, unix_secs(r.time))),
            postgres: snapshot.postgres.map(|r| {
                let latency = r.outcome.ok().map(|l| latency_micros(l) as u64);
                (latency, unix_secs(r.time))
            }),
            restarts: snapshot.restarts,
            migration_version: snapshot.migration_version,
            lock_holder: snapshot
                .lock_wait
                .as_ref()
                .and_then(|w| w.holder.as_ref())
                .map(|h| (h.pid, h.held_for.map(|d| d.as_secs()))),
        }
    }
}

/// The last `/health` document served: under a flood most requests ask for the same one.
#[derive(Default)]
pub struct DocumentCache(Mutex<Option<(DocumentKey, Status, Bytes)>>);

impl DocumentCache {
    pub fn render(
        &self,
        snapshot: &Snapshot,
        excluded: &[CheckName],
        details: bool,
    ) -> (Status, Bytes) {
        let now = SystemTime::now();
        let key = DocumentKey::of(snapshot, excluded, details, now);
        // A poisoned cache holds a whole entry or none: keep using it.
        let cached = || self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, status, body)) = &*cached() {
            if *cached == key {
                return (*status, body.clone());
            }
        }
        let (status, body) = health_json_at(snapshot, excluded, details, now);
        let body = Bytes::from(body);
        *cached() = Some((key, status, body.clone()));
        (status, body)
    }
}

#[cfg(test)]
fn health_json(snapshot: &Snapshot, excluded: &[CheckName], details: bool) -> (Status, String) {
    health_json_at(snapshot, excluded, details, SystemTime::now())
}

/// The `/health` document and its overall status. Without `details` it carries statuses and values only:
/// no `output`, `version`, `pid` or `rssBytes`.
fn health_json_at(
    snapshot: &Snapshot,
    excluded: &[CheckName],
    details: bool,
    now: SystemTime,
) -> (Status, String) {
    let now = rfc3339(now);
    let output = |verdict: Verdict| {
        verdict
            .reason
            .filter(|_| details)
            .map(|reason| reason.as_str().to_owned())
    };

    let verdict = snapshot.verdict(CheckName::Supervisor, Probe::Ready);
    let supervisor = Entry {
        status: Some(verdict.status),
        observed_value: Some(snapshot.phase.as_str().into()),
        output: output(verdict),
        lock_holder: snapshot
            .lock_wait
            .as_ref()
            .and_then(|w| w.holder.as_ref())
            .filter(|_| details)
            .map(|h| LockHolder {
                pid: h.pid,
                application_name: h.application_name.clone(),
                client_address: h.client.clone(),
                held_seconds: h.held_for.map(|d| d.as_secs()),
            }),
        time: Some(now.clone()),
        ..Entry::default()
    };

    let verdict = snapshot.verdict(CheckName::App, Probe::Ready);
    let reading = snapshot.current_child_reading();
    let app = Entry {
        component_type: Some("component".into()),
        status: Some(verdict.status),
        observed_value: snapshot
            .child
            .map(|c| (uptime_tenths(snapshot, c.started) / 10.0).into()),
        observed_unit: snapshot.child.map(|_| "s".into()),
        restarts: Some(snapshot.restarts),
        pid: snapshot.child.map(|c| c.pid).filter(|_| details),
        rss_bytes: reading.and_then(|r| r.rss_bytes).filter(|_| details),
        output: output(verdict),
        time: Some(reading.map_or_else(|| now.clone(), |r| rfc3339(r.time))),
        ..Entry::default()
    };

    let verdict = snapshot.verdict(CheckName::Postgres, Probe::Ready);
    let latency = snapshot.postgres.and_then(|r| r.outcome.ok());
    let postgres = Entry {
        component_type: Some("datastore".into()),
        status: Some(verdict.status),
        observed_value: latency.map(|l| (latency_micros(l) / 1e3).into()),
        observed_unit: latency.map(|_| "ms".into()),
        output: output(verdict),
        time: Some(
            snapshot
                .postgres
                .map_or_else(|| now.clone(), |r| rfc3339(r.time)),
        ),
        ..Entry::default()
    };

    let migrations = match snapshot.migration_version {
        Some(version) => Entry {
            status: Some(Status::Pass),
            observed_value: Some(version.into()),
            time: Some(now),
            ..Entry::default()
        },
        None => Entry {
            status: Some(Status::Warn),
            output: Some(Reason::Starting.as_str().to_owned()).filter(|_| details),
            time: Some(now),
            ..Entry::default()
        },
    };

    let status = overall(snapshot, excluded);
    let document = Document {
        status,
        version: Some(env!("CARGO_PKG_VERSION").to_owned()).filter(|_| details),
        output: None,
        checks: Checks(vec![
            ("supervisor:state".into(), vec![supervisor]),
            ("app:uptime".into(), vec![app]),
            ("postgres:responseTime".into(), vec![postgres]),
            ("migrations:version".into(), vec![migrations]),
        ]),
    };
    let body = serde_json::to_string(&document).expect("the document serialises");
    (status, body)
}

/// `/livez` or `/readyz` verbose text: one line per check, then the verdict. Failure reasons are shown
/// only with `details`. Returns whether the probe passed.
pub fn verbose_text(
    snapshot: &Snapshot,
    probe: Probe,
    excluded: &[CheckName],
    details: bool,
) -> (bool, String) {
    let (name, checks): (&str, &[CheckName]) = match probe {
        Probe::Live => ("livez", &CheckName::LIVENESS),
        Probe::Ready => ("readyz", &CheckName::ALL),
    };
    let mut text = String::with_capacity(160);
    let mut passed = true;
    for &check in checks {
        let label = check.as_str();
        if excluded.contains(&check) {
            let _ = writeln!(text, "[+]{label} excluded: ok");
            continue;
        }
        let verdict = snapshot.verdict(check, probe);
        if verdict.passing() {
            let _ = writeln!(text, "[+]{label} ok");
        } else {
            passed = false;
            let reason = match verdict.reason {
                Some(reason) if details => reason.as_str(),
                _ => "reason withheld",
            };
            let _ = writeln!(text, "[-]{label} failed: {reason}");
        }
    }
    let verdict = if passed { "passed" } else { "failed" };
    let _ = writeln!(text, "{name} check {verdict}");
    (passed, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::checks::{ChildReading, PostgresReading};
    use crate::state::{ChildInfo, Phase};
    use std::time::{Duration, Instant};

    fn running() -> Snapshot {
        let now = Instant::now();
        Snapshot {
            now,
            phase: Phase::Running,
            child: Some(ChildInfo {
                pid: 42,
                started: now - Duration::from_millis(12_400),
                started_at: SystemTime::now(),
            }),
            child_reading: Some(ChildReading {
                pid: 42,
                at: now,
                time: SystemTime::now(),
                outcome: Ok(()),
                rss_bytes: Some(7_340_032),
                settled: true,
            }),
            postgres: Some(PostgresReading {
                at: now,
                time: SystemTime::now(),
                outcome: Ok(Duration::from_micros(900)),
            }),
            restarts: 0,
            migration_version: Some(3),
            lock_wait: None,
        }
    }

    #[test]
    fn the_document_has_the_drafts_shape() {
        let (status, body) = health_json(&running(), &[], true);
        assert_eq!(status, Status::Pass);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["status"], "pass");
        assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
        let checks = &doc["checks"];
        assert_eq!(checks["supervisor:state"][0]["observedValue"], "running");
        let app = &checks["app:uptime"][0];
        assert_eq!(app["componentType"], "component");
        assert_eq!(app["observedValue"], 12.4);
        assert_eq!(app["observedUnit"], "s");
        assert_eq!(app["restarts"], 0);
        assert_eq!(app["pid"], 42);
        assert_eq!(app["rssBytes"], 7_340_032);
        let pg = &checks["postgres:responseTime"][0];
        assert_eq!(pg["componentType"], "datastore");
        assert_eq!(pg["observedValue"], 0.9);
        assert_eq!(pg["observedUnit"], "ms");
        assert_eq!(checks["migrations:version"][0]["observedValue"], 3);
        assert!(!body.contains("output"), "{body}");
        // Key order as the contract shows it.
        let order = [
            "supervisor:state",
            "app:uptime",
            "postgres:responseTime",
            "migrations:version",
        ];
        let positions: Vec<usize> = order.iter().map(|k| body.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{body}");
        let time = pg["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() == 20, "{time}");
    }

    #[test]
    fn without_details_only_statuses_remain() {
        let mut s = running();
        s.postgres.as_mut().unwrap().outcome = Err(Reason::ConnectionRefused);
        let (status, body) = health_json(&s, &[], false);
        assert_eq!(status, Status::Fail);
        for hidden in [
            r#""output""#,
            r#""version""#,
            r#""pid""#,
            r#""rssBytes""#,
            "connection refused",
        ] {
            assert!(!body.contains(hidden), "{hidden} in {body}");
        }
        let (_, body) = health_json(&s, &[], true);
        assert!(body.contains(r#""output":"connection refused""#), "{body}");
        let (status, _) = health_json(&s, &[CheckName::Postgres], true);
        assert_eq!(status, Status::Pass);
    }

    #[test]
    fn waiting_for_the_migration_lock_names_the_holder_to_loopback_callers_only() {
        let mut s = running();
        s.phase = Phase::Starting;
        s.child = None;
        s.lock_wait = Some(crate::state::LockWait {
            since: Instant::now(),
            holder: Some(crate::state::LockHolder {
                pid: 4242,
                application_name: Some("supervisor@web-1".into()),
                client: Some("10.0.0.7:53122".into()),
                held_for: Some(Duration::from_secs(42)),
            }),
        });
        let (status, body) = health_json(&s, &[], true);
        assert_eq!(status, Status::Fail);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let state = &doc["checks"]["supervisor:state"][0];
        assert_eq!(state["status"], "fail");
        assert_eq!(state["observedValue"], "starting");
        assert_eq!(state["output"], "waiting for migration lock");
        assert_eq!(
            state["lockHolder"],
            serde_json::json!({"pid": 4242, "applicationName": "supervisor@web-1",
                               "clientAddress": "10.0.0.7:53122", "heldSeconds": 42})
        );
        let (_, body) = health_json(&s, &[], false);
        assert!(!body.contains("lockHolder"), "{body}");
        assert!(!body.contains("4242"), "{body}");
        // Waiting is no reason to restart the container: liveness holds.
        let (live, text) = verbose_text(&s, Probe::Live, &[], true);
        assert!(live, "{text}");
        let (ready, text) = verbose_text(&s, Probe::Ready, &[], true);
        assert!(!ready);
        assert!(
            text.contains("[-]supervisor failed: waiting for migration lock"),
            "{text}"
        );
    }

    #[test]
    fn the_cache_serves_what_a_fresh_render_gives() {
        let cache = DocumentCache::default();
        let mut s = running();
        let fresh = |s: &Snapshot, details| {
            let (status, body) = health_json(s, &[], details);
            (status, Bytes::from(body))
        };
        assert_eq!(cache.render(&s, &[], true), fresh(&s, true));
        assert_eq!(cache.render(&s, &[], false), fresh(&s, false));
        s.restarts = 2;
        assert_eq!(cache.render(&s, &[], false), fresh(&s, false));
        s.postgres.as_mut().unwrap().outcome = Ok(std::time::Duration::from_micros(1_234));
        assert_eq!(cache.render(&s, &[], false), fresh(&s, false));
        s.now += std::time::Duration::from_millis(100);
        assert_eq!(cache.render(&s, &[], false), fresh(&s, false));
        s.phase = Phase::Draining;
        assert_eq!(cache.render(&s, &[], false), fresh(&s, false));
        let (status, _) = cache.render(&s, &[CheckName::Supervisor], false);
        assert_eq!(status, Status::Pass);
    }

    #[test]
    fn verbose_text_matches_the_contract() {
        let mut s = running();
        let (passed, text) = verbose_text(&s, Probe::Ready, &[], false);
        assert!(passed);
        assert_eq!(
            text,
            "[+]supervisor ok\n[+]app ok\n[+]postgres ok\nreadyz check passed\n"
        );
        s.postgres.as_mut().unwrap().outcome = Err(Reason::Timeout);
        let (passed, text) = verbose_text(&s, Probe::Ready, &[], false);
        assert!(!passed);
        assert_eq!(
            text,
            "[+]supervisor ok\n[+]app ok\n[-]postgres failed: reason withheld\nreadyz check failed\n"
        );
        let (_, text) = verbose_text(&s, Probe::Ready, &[], true);
        assert!(text.contains("[-]postgres failed: timeout\n"), "{text}");
        let (passed, text) = verbose_text(&s, Probe::Ready, &[CheckName::Postgres], false);
        assert!(passed);
        assert!(text.contains("[+]postgres excluded: ok\n"), "{text}");
        let (passed, text) = verbose_text(&s, Probe::Live, &[], false);
        assert!(passed);
        assert_eq!(text, "[+]supervisor ok\n[+]app ok\nlivez check passed\n");
    }
}
