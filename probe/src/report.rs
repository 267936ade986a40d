//! Turning an answer into a verdict: the IETF health document of `/health`, or the verbose text of
//! `/readyz?verbose` and `/livez?verbose`.
//!
//! Which one is decided by the answer's Content-Type, so `--url` works against either kind of endpoint.

use std::fmt;
use std::time::Duration;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

pub use common::health::Status;

use crate::http::Response;
use crate::sanitize::clean;

/// Longest component or check name shown.
const NAME_CHARS: usize = 40;
/// Longest `output`, observed value or time shown.
const FIELD_CHARS: usize = 60;

/// One entry of a check: `"postgres:responseTime": [ {...} ]` or a `[+]postgres ok` line. All text is
/// already cleaned and bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The full key, e.g. `postgres:responseTime`.
    pub name: String,
    /// The component part of the key, e.g. `postgres`.
    pub component: String,
    /// `None` when the server gave no (or an unknown) status for this entry.
    pub status: Option<Status>,
    pub observed: Option<String>,
    pub unit: Option<String>,
    pub output: Option<String>,
    /// Who holds the lock a starting supervisor waits for (its `lockHolder`), as one phrase.
    pub lock_holder: Option<String>,
    pub time: Option<String>,
}

/// Which kind of answer the report came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// An `application/health+json` (or JSON) document; `text` is the body as received.
    Document { text: String },
    /// A plain-text answer (`ok` or verbose lines).
    Text,
}

/// The verdict of one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub status: Status,
    pub checks: Vec<Check>,
    /// The document's own top-level `output`, if any.
    pub output: Option<String>,
    pub http_status: u16,
    pub elapsed: Duration,
    pub source: Source,
}

/// Why an answer could not be interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// The endpoint answered with a code that says nothing about health (404, 500, ...).
    HttpStatus { code: u16, reason: String },
    /// The answer is not a health answer.
    Malformed(String),
}

impl Report {
    pub fn from_response(response: &Response) -> Result<Report, Unusable> {
        let http_verdict = match response.status {
            200 => Status::Pass,
            503 => Status::Fail,
            code => {
                return Err(Unusable::HttpStatus {
                    code,
                    reason: response.reason.clone(),
                })
            }
        };
        let mut report = match kind_of(response)? {
            Kind::Json => from_document(&response.body)?,
            Kind::Text => from_text(&response.body, response.status)?,
        };
        // A 503 carrying a passing document is still a failure to a load balancer: keep the worse.
        report.status = report.status.max(http_verdict);
        report.http_status = response.status;
        report.elapsed = response.elapsed;
        Ok(report)
    }

    /// Components in order of first appearance, each with its worst status and that entry's output.
    pub fn components(&self) -> Vec<(String, Option<Status>, Option<String>)> {
        let mut out: Vec<(String, Option<Status>, Option<String>)> = Vec::new();
        for check in &self.checks {
            match out.iter_mut().find(|(name, _, _)| *name == check.component) {
                Some(entry) => {
                    if check.status > entry.1 {
                        entry.1 = check.status;
                        entry.2 = check.output.clone();
                    }
                }
                None => out.push((check.component.clone(), check.status, check.output.clone())),
            }
        }
        out
    }
}

enum Kind {
    Json,
    Text,
}

fn kind_of(response: &Response) -> Result<Kind, Unusable> {
    match response.content_type.as_deref() {
        Some("application/health+json" | "application/json") => Ok(Kind::Json),
        Some(t) if t.ends_with("+json") => Ok(Kind::Json),
        Some("text/plain") => Ok(Kind::Text),
        Some(other) => Err(Unusable::Malformed(format!(
            "unexpected content type {other}"
        ))),
        // No type given: judge by the first byte.
        None if response.body.trim_ascii_start().starts_with(b"{") => Ok(Kind::Json),
        None => Ok(Kind::Text),
    }
}

/// The top level of an IETF health document. Only the fields the verdict needs are read; `checks` keeps the
/// server's order so the summary reads the way the server lists its components.
#[derive(Deserialize)]
#[serde(expecting = "a health document (a JSON object)")]
struct Document {
    status: Option<Value>,
    output: Option<Value>,
    /// The app's seed-compatible `/health` puts its reason here.
    error: Option<Value>,
    checks: Option<OrderedChecks>,
}

struct OrderedChecks(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedChecks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChecksVisitor;
        impl<'de> Visitor<'de> for ChecksVisitor {
            type Value = OrderedChecks;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of checks")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedChecks, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(OrderedChecks(entries))
            }
        }
        deserializer.deserialize_map(ChecksVisitor)
    }
}

fn malformed(reason: impl Into<String>) -> Unusable {
    Unusable::Malformed(reason.into())
}

fn from_document(body: &[u8]) -> Result<Report, Unusable> {
    let text = std::str::from_utf8(body).map_err(|e| {
        malformed(format!(
            "body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    if text.trim().is_empty() {
        return Err(malformed("empty body"));
    }
    let document: Document = serde_json::from_str(text).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "not JSON"
        } else {
            "not a health document"
        };
        malformed(format!("{what}: {}", clean(&e.to_string(), 100)))
    })?;
    let status = match &document.status {
        None => return Err(malformed("document has no \"status\"")),
        Some(Value::String(s)) => Status::parse(s)
            .ok_or_else(|| malformed(format!("unknown status {:?}", clean(s, 30))))?,
        Some(_) => return Err(malformed("\"status\" is not a string")),
    };
    let output = document
        .output
        .as_ref()
        .or(document.error.as_ref())
        .and_then(display_value);
    let mut checks = Vec::new();
    for (name, entries) in document.checks.map(|c| c.0).unwrap_or_default() {
        let shown_name = clean(&name, NAME_CHARS);
        let component = clean(name.split(':').next().unwrap_or(&name), NAME_CHARS);
        let entries = match entries {
            Value::Array(entries) => entries,
            // Tolerated: a single object where the draft asks for a list of one.
            Value::Object(_) => vec![entries],
            _ => return Err(malformed(format!("check {shown_name:?} is not a list"))),
        };
        for entry in entries {
            let Value::Object(fields) = entry else {
                return Err(malformed(format!(
                    "check {shown_name:?} has an entry that is not an object"
                )));
            };
            let status = match fields.get("status") {
                None => None,
                Some(Value::String(s)) => Status::parse(s),
                Some(_) => {
                    return Err(malformed(format!(
                        "check {shown_name:?} has a non-string status"
                    )))
                }
            };
            checks.push(Check {
                name: shown_name.clone(),
                component: component.clone(),
                status,
                observed: fields.get("observedValue").and_then(display_value),
                unit: fields.get("observedUnit").and_then(display_value),
                output: fields.get("output").and_then(display_value),
                lock_holder: fields.get("lockHolder").and_then(lock_holder),
                time: fields.get("time").and_then(display_value),
            });
        }
    }
    Ok(Report {
        status,
        checks,
        output,
        http_status: 0,
        elapsed: Duration::ZERO,
        source: Source::Document {
            text: text.to_owned(),
        },
    })
}

/// A JSON value as a short, safe string; `null` and empty strings count as absent.
fn display_value(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) if s.trim().is_empty() => return None,
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(clean(&text, FIELD_CHARS))
}

/// `{"pid":4242,"applicationName":"supervisor@web-1","clientAddress":"10.0.0.7:53122","heldSeconds":42}` as
/// `pid 4242 ("supervisor@web-1" from 10.0.0.7:53122, for 42s)`.
fn lock_holder(value: &Value) -> Option<String> {
    let pid = value.get("pid")?.as_i64()?;
    let mut about = Vec::new();
    if let Some(name) = value.get("applicationName").and_then(Value::as_str) {
        about.push(format!("{:?}", clean(name, NAME_CHARS)));
    }
    if let Some(client) = value.get("clientAddress").and_then(Value::as_str) {
        about.push(format!("from {}", clean(client, NAME_CHARS)));
    }
    if let Some(held) = value.get("heldSeconds").and_then(Value::as_u64) {
        about.push(format!("for {held}s"));
    }
    Some(match about.is_empty() {
        true => format!("pid {pid}"),
        false => format!("pid {pid} ({})", about.join(", ")),
    })
}

/// Parses `ok`/`failed` or Kubernetes-style verbose lines (`[+]name ok`, `[-]name failed: reason`).
fn from_text(body: &[u8], http_status: u16) -> Result<Report, Unusable> {
    let text = std::str::from_utf8(body).map_err(|e| {
        malformed(format!(
            "body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let mut checks = Vec::new();
    let mut summary = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("[+]") {
            let (name, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            // `[+]postgres excluded: ok` is shown, but does not count.
            let output = detail
                .strip_suffix(": ok")
                .filter(|d| *d == "excluded")
                .map(str::to_owned);
            checks.push(text_check(name, Status::Pass, output));
        } else if let Some(rest) = line.strip_prefix("[-]") {
            let (name, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            let reason = detail
                .strip_prefix("failed")
                .map(|r| r.trim_start_matches(':').trim());
            let output = reason.filter(|r| !r.is_empty()).map(str::to_owned);
            checks.push(text_check(name, Status::Fail, output));
        } else if line.ends_with("check passed") {
            summary = Some(Status::Pass);
        } else if line.ends_with("check failed") {
            summary = Some(Status::Fail);
        }
    }
    let trimmed = text.trim();
    let status = if checks.is_empty() && summary.is_none() {
        match trimmed {
            "ok" => Status::Pass,
            "failed" => Status::Fail,
            // A 503 is a failure whatever its text; a 200 with unknown text is not our health endpoint.
            _ if http_status == 503 => Status::Fail,
            "" => return Err(malformed("empty body")),
            other => {
                return Err(malformed(format!(
                    "not a health answer: {:?}",
                    clean(other, 40)
                )))
            }
        }
    } else {
        let worst_check = checks
            .iter()
            .filter_map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass);
        worst_check.max(summary.unwrap_or(Status::Pass))
    };
    Ok(Report {
        status,
        checks,
        output: None,
        http_status: 0,
        elapsed: Duration::ZERO,
        source: Source::Text,
    })
}

fn text_check(name: &str, status: Status, output: Option<String>) -> Check {
    let name = clean(name, NAME_CHARS);
    Check {
        component: name.clone(),
        name,
        status: Some(status),
        observed: None,
        unit: None,
        output: output.map(|o| clean(&o, FIELD_CHARS)),
        lock_holder: None,
        time: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, content_type: Option<&str>, body: &[u8]) -> Response {
        Response {
            status,
            reason: "Whatever".into(),
            content_type: content_type.map(str::to_owned),
            body: body.to_vec(),
            elapsed: Duration::from_micros(900),
        }
    }

    fn json(status: u16, body: &str) -> Result<Report, Unusable> {
        Report::from_response(&response(
            status,
            Some("application/health+json"),
            body.as_bytes(),
        ))
    }

    fn reason(result: Result<Report, Unusable>) -> String {
        match result {
            Err(Unusable::Malformed(reason)) => reason,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    const CONTRACT_EXAMPLE: &str = include_str!("../tests/fixtures/health-pass.json");

    #[test]
    fn contract_example_passes_in_document_order() {
        let report = json(200, CONTRACT_EXAMPLE).unwrap();
        assert_eq!(report.status, Status::Pass);
        let names: Vec<_> = report.components().into_iter().map(|c| c.0).collect();
        assert_eq!(names, ["supervisor", "app", "postgres", "migrations"]);
        let pg = report
            .checks
            .iter()
            .find(|c| c.component == "postgres")
            .unwrap();
        assert_eq!(pg.observed.as_deref(), Some("0.9"));
        assert_eq!(pg.unit.as_deref(), Some("ms"));
        assert!(matches!(report.source, Source::Document { .. }));
    }

    #[test]
    fn failing_check_output_is_kept() {
        let body = r#"{"status":"fail","checks":{"postgres:responseTime":[{"status":"fail","output":"connection refused"}],"supervisor:state":[{"status":"pass"}]}}"#;
        let report = json(503, body).unwrap();
        assert_eq!(report.status, Status::Fail);
        let components = report.components();
        assert_eq!(
            components[0],
            (
                "postgres".into(),
                Some(Status::Fail),
                Some("connection refused".into())
            )
        );
    }

    #[test]
    fn worst_entry_decides_a_component() {
        let body = r#"{"status":"warn","checks":{"postgres:a":[{"status":"pass"}],"postgres:b":[{"status":"warn","output":"timeout"},{"status":"pass"}]}}"#;
        let report = json(200, body).unwrap();
        assert_eq!(report.status, Status::Warn);
        assert_eq!(
            report.components(),
            [(
                "postgres".into(),
                Some(Status::Warn),
                Some("timeout".into())
            )]
        );
    }

    #[test]
    fn http_code_and_document_disagreeing_gives_the_worse() {
        assert_eq!(
            json(503, r#"{"status":"pass"}"#).unwrap().status,
            Status::Fail
        );
        assert_eq!(
            json(200, r#"{"status":"fail"}"#).unwrap().status,
            Status::Fail
        );
    }

    #[test]
    fn aliases_and_missing_optional_fields() {
        let r = json(
            200,
            r#"{"status":"healthy","timestamp":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!((r.status, r.checks.len()), (Status::Pass, 0));
        let r = json(
            503,
            r#"{"status":"unhealthy","error":"Database connection failed"}"#,
        )
        .unwrap();
        assert_eq!(r.output.as_deref(), Some("Database connection failed"));
        let r = json(
            200,
            r#"{"status":"pass","checks":{"x":[{}],"y":{"status":"pass"}}}"#,
        )
        .unwrap();
        assert_eq!(r.checks[0].status, None);
        assert_eq!(r.checks[1].status, Some(Status::Pass));
    }

    #[test]
    fn bad_documents_are_malformed_with_a_reason() {
        assert!(reason(json(200, "")).contains("empty"));
        assert!(reason(json(200, "<html>")).starts_with("not JSON"));
        assert!(reason(json(200, r#"{"status":"pass""#)).starts_with("not JSON"));
        assert!(reason(json(200, "[1,2]")).contains("health document"));
        assert!(reason(json(200, r#"{"checks":{}}"#)).contains("no \"status\""));
        assert!(reason(json(200, r#"{"status":1}"#)).contains("not a string"));
        assert!(reason(json(200, r#"{"status":"great"}"#)).contains("unknown status"));
        assert!(reason(json(200, r#"{"status":"pass","status":"fail"}"#)).contains("duplicate"));
        assert!(reason(json(200, r#"{"status":"pass","checks":[]}"#)).contains("object of checks"));
        assert!(reason(json(200, r#"{"status":"pass","checks":{"a":"x"}}"#)).contains("not a list"));
        assert!(
            reason(json(200, r#"{"status":"pass","checks":{"a":[1]}}"#)).contains("not an object")
        );
        assert!(reason(json(
            200,
            r#"{"status":"pass","checks":{"a":[{"status":5}]}}"#
        ))
        .contains("non-string"));
    }

    #[test]
    fn non_utf8_and_wrong_content_types_are_malformed() {
        let bad = Report::from_response(&response(
            200,
            Some("application/json"),
            b"{\"status\":\"pa\xffss\"}",
        ));
        assert!(reason(bad).contains("not UTF-8"));
        let html = Report::from_response(&response(200, Some("text/html"), b"<h1>ok</h1>"));
        assert_eq!(reason(html), "unexpected content type text/html");
        let sniffed =
            Report::from_response(&response(200, None, b" {\"status\":\"pass\"}")).unwrap();
        assert!(matches!(sniffed.source, Source::Document { .. }));
    }

    #[test]
    fn hostile_strings_are_cleaned_and_bounded() {
        let long = "A".repeat(10_000);
        let body = format!(
            r#"{{"status":"fail","checks":{{"{long}:x":[{{"status":"fail","output":"\u001b[2J{long}"}}]}}}}"#
        );
        let report = json(503, &body).unwrap();
        let check = &report.checks[0];
        assert!(check.name.chars().count() <= NAME_CHARS);
        let output = check.output.as_deref().unwrap();
        assert!(output.starts_with("?[2J") && output.chars().count() <= FIELD_CHARS);
    }

    #[test]
    fn unexpected_http_codes_are_unusable() {
        let r = Report::from_response(&response(404, Some("text/plain"), b"not found"));
        assert_eq!(
            r,
            Err(Unusable::HttpStatus {
                code: 404,
                reason: "Whatever".into()
            })
        );
    }

    fn text(status: u16, body: &str) -> Result<Report, Unusable> {
        Report::from_response(&response(status, Some("text/plain"), body.as_bytes()))
    }

    #[test]
    fn verbose_text_is_parsed() {
        let r = text(
            200,
            "[+]supervisor ok\n[+]app ok\n[+]postgres excluded: ok\nreadyz check passed\n",
        )
        .unwrap();
        assert_eq!(r.status, Status::Pass);
        assert_eq!(r.checks.len(), 3);
        assert_eq!(r.checks[2].output.as_deref(), Some("excluded"));

        let r = text(503, "[+]supervisor ok\n[+]app ok\n[-]postgres failed: reason withheld\nreadyz check failed\n").unwrap();
        assert_eq!(r.status, Status::Fail);
        assert_eq!(
            r.components()[2],
            (
                "postgres".into(),
                Some(Status::Fail),
                Some("reason withheld".into())
            )
        );
    }

    #[test]
    fn short_text_answers() {
        assert_eq!(text(200, "ok").unwrap().status, Status::Pass);
        assert_eq!(text(503, "failed").unwrap().status, Status::Fail);
        assert_eq!(text(503, "anything").unwrap().status, Status::Fail);
        // A failing line in a 200 still fails.
        assert_eq!(text(200, "[-]app failed\n").unwrap().status, Status::Fail);
        assert!(reason(text(200, "hello world")).contains("not a health answer"));
        assert!(reason(text(200, "")).contains("empty"));
        assert!(reason(text(200, "ok\u{0}\u{ff}")).contains("not a health answer"));
        let bad = Report::from_response(&response(200, Some("text/plain"), b"ok\xff"));
        assert!(reason(bad).contains("not UTF-8"));
    }
}
