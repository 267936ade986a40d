//! The three output forms: the one-line summary, the `--verbose` table and the `--json` document. Everything
//! taken from the server is cleaned and bounded here, as it is printed.

use std::fmt::Write as _;

use common::health::{Document, Entry, Status};
use serde_json::Value;

use crate::answer::{Outcome, Report};
use crate::sanitize::{clean, escape_json_text, truncate_bytes, MAX_LINE_BYTES};
use crate::target::Target;

/// A component that informs rather than decides.
const INFORMATIONAL: &str = "migrations";
/// Longest component or check name shown.
const NAME_CHARS: usize = 40;
/// Longest `output`, observed value or time shown.
const FIELD_CHARS: usize = 60;

/// `pass: supervisor=pass app=pass postgres=pass (0.9 ms)`, `fail: postgres=fail(connection refused)`, or
/// `fail: cannot connect to ...`; at most 256 bytes. Without `with_time` the round-trip time is left out,
/// which makes lines of one state compare equal (`--watch`).
pub fn summary_line(outcome: &Outcome, with_time: bool) -> String {
    let line = match outcome {
        Ok(report) => report_line(report, with_time),
        Err(failure) => format!("fail: {failure}"),
    };
    truncate_bytes(&line, MAX_LINE_BYTES)
}

/// Text worth showing: `None` for blank strings, other values as JSON.
fn shown(text: Option<&str>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
        .map(|t| clean(t, FIELD_CHARS))
}

/// Each component (a check's name up to `:`) in order of first appearance, with its worst entry's status
/// and output.
fn components(document: &Document) -> Vec<(&str, Option<Status>, Option<&str>)> {
    let mut out: Vec<(&str, Option<Status>, Option<&str>)> = Vec::new();
    for (name, entries) in &document.checks.0 {
        let component = name.split(':').next().unwrap_or(name);
        for entry in entries {
            let output = entry.output.as_deref();
            match out.iter_mut().find(|(seen, _, _)| *seen == component) {
                Some(worst) if entry.status > worst.1 => *worst = (component, entry.status, output),
                Some(_) => {}
                None => out.push((component, entry.status, output)),
            }
        }
    }
    out
}

fn report_line(report: &Report, with_time: bool) -> String {
    let status = report.document.status;
    let mut parts: Vec<String> = components(&report.document)
        .into_iter()
        .filter(|(name, entry, _)| match status {
            // Healthy: the roll-call of what readiness depends on. The supervisor's `migrations` entry only
            // reports the schema version (shown by --verbose), so a passing one is left out of the line.
            Status::Pass => !(*name == INFORMATIONAL && *entry == Some(Status::Pass)),
            // Unhealthy: only what is wrong, so the cause fits in the line.
            Status::Warn | Status::Fail => entry.is_some_and(|s| s > Status::Pass),
        })
        .map(|(name, entry, output)| {
            let name = clean(name, NAME_CHARS);
            let entry = entry.map_or("unknown", Status::as_str);
            match shown(output) {
                Some(output) => format!("{name}={entry}({output})"),
                None => format!("{name}={entry}"),
            }
        })
        .collect();
    if parts.is_empty() {
        match (shown(report.document.output.as_deref()), status) {
            (Some(output), _) => parts.push(output),
            (None, Status::Fail) if report.http_status == 503 => {
                parts.push("HTTP 503 (no failing check named)".into())
            }
            (None, Status::Fail) => parts.push("no failing check named".into()),
            (None, _) => {}
        }
    }
    let mut line = status.as_str().to_owned();
    if !parts.is_empty() {
        line.push_str(": ");
        line.push_str(&parts.join(" "));
    }
    if with_time && status != Status::Fail {
        let _ = write!(line, " ({:.1} ms)", report.elapsed.as_secs_f64() * 1000.0);
    }
    line
}

/// A heading naming the request, a table of every check entry, then the summary line.
pub fn table(outcome: &Outcome, target: &Target) -> String {
    let mut out = String::new();
    let Ok(report) = outcome else {
        let _ = writeln!(out, "GET {target}");
        out.push_str(&summary_line(outcome, true));
        out.push('\n');
        return out;
    };
    let _ = writeln!(
        out,
        "GET {target}: HTTP {} in {:.1} ms",
        report.http_status,
        report.elapsed.as_secs_f64() * 1000.0
    );
    let mut rows = vec![["CHECK", "STATUS", "OBSERVED", "OUTPUT", "TIME"].map(String::from)];
    for (name, entries) in &report.document.checks.0 {
        for entry in entries {
            let value = match &entry.observed_value {
                Some(Value::String(text)) => shown(Some(text)),
                Some(other) => shown(Some(&other.to_string())),
                None => None,
            };
            let observed = match (value, shown(entry.observed_unit.as_deref())) {
                (Some(value), Some(unit)) => format!("{value} {unit}"),
                (Some(value), None) => value,
                (None, _) => "-".into(),
            };
            let dash = || "-".to_owned();
            rows.push([
                clean(name, NAME_CHARS),
                entry.status.map_or("unknown", Status::as_str).to_owned(),
                observed,
                output_cell(entry).unwrap_or_else(dash),
                shown(entry.time.as_deref()).unwrap_or_else(dash),
            ]);
        }
    }
    if rows.len() > 1 {
        let mut widths = [0; 5];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for row in &rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(widths) {
                let _ = write!(line, "{cell:width$}  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.push_str(&summary_line(outcome, true));
    out.push('\n');
    out
}

/// The entry's output and, while a supervisor waits for the migration lock, who holds it:
/// `waiting for migration lock: held by pid 4242 ("supervisor@web-1" from 10.0.0.7:53122, for 42s)`.
fn output_cell(entry: &Entry) -> Option<String> {
    let output = shown(entry.output.as_deref());
    let Some(holder) = &entry.lock_holder else {
        return output;
    };
    let mut about = String::new();
    if let Some(name) = &holder.application_name {
        let _ = write!(about, "{:?} ", clean(name, NAME_CHARS));
    }
    if let Some(client) = &holder.client_address {
        let _ = write!(about, "from {}", clean(client, NAME_CHARS));
    }
    let mut about = about.trim_end().to_owned();
    if let Some(held) = holder.held_seconds {
        let separator = if about.is_empty() { "" } else { ", " };
        let _ = write!(about, "{separator}for {held}s");
    }
    let mut held_by = format!("held by pid {}", holder.pid);
    if !about.is_empty() {
        let _ = write!(held_by, " ({about})");
    }
    Some(match output {
        Some(output) => format!("{output}: {held_by}"),
        None => held_by,
    })
}

/// The health document as received (made terminal-safe), or the one built from a text answer, or one
/// naming the failure, so that scripts always get JSON with a `status`.
pub fn json(outcome: &Outcome) -> String {
    let text = match outcome {
        Ok(Report {
            received: Some(text),
            ..
        }) => text.trim().to_owned(),
        Ok(report) => pretty(&report.document),
        Err(failure) => pretty(&Document {
            status: Status::Fail,
            version: None,
            output: Some(failure.to_string()),
            checks: Default::default(),
        }),
    };
    escape_json_text(&text) + "\n"
}

fn pretty(document: &Document) -> String {
    serde_json::to_string_pretty(document).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::read;
    use crate::http::{Failure, Response};
    use std::time::Duration;

    fn outcome(status: u16, content_type: &str, body: &str) -> Outcome {
        let response = Response {
            status,
            reason: String::new(),
            content_type: Some(content_type.into()),
            body: body.as_bytes().to_vec(),
            elapsed: Duration::from_micros(912),
        };
        read(&response, "h:1")
    }

    #[test]
    fn lines_without_checks() {
        let app = outcome(
            503,
            "application/json",
            r#"{"status":"unhealthy","error":"Database connection failed"}"#,
        );
        assert_eq!(summary_line(&app, true), "fail: Database connection failed");
        let bare = outcome(503, "application/health+json", r#"{"status":"pass"}"#);
        assert_eq!(
            summary_line(&bare, true),
            "fail: HTTP 503 (no failing check named)"
        );
        let ok = outcome(200, "text/plain", "ok");
        assert_eq!(summary_line(&ok, true), "pass (0.9 ms)");
    }

    #[test]
    fn the_worst_entry_speaks_for_its_component() {
        let body = r#"{"status":"warn","checks":{"postgres:a":[{"status":"pass"}],"postgres:b":[{"status":"warn","output":"timeout"},{"status":"pass"}],"cache":[{}]}}"#;
        let warn = outcome(200, "application/health+json", body);
        assert_eq!(summary_line(&warn, false), "warn: postgres=warn(timeout)");
        let pass = body.replace(r#""status":"warn""#, r#""status":"pass""#);
        let pass = outcome(200, "application/health+json", &pass);
        assert_eq!(
            summary_line(&pass, false),
            "pass: postgres=pass cache=unknown"
        );
    }

    #[test]
    fn table_lists_every_entry_in_columns() {
        let document = include_str!("../tests/fixtures/health-pass.json");
        let target = Target::from_health_addr("0.0.0.0:8081", "/health").unwrap();
        let table = table(&outcome(200, "application/health+json", document), &target);
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(
            lines[0],
            "GET http://127.0.0.1:8081/health: HTTP 200 in 0.9 ms"
        );
        assert!(lines[1].starts_with("CHECK") && lines[1].contains("OBSERVED"));
        assert!(lines[2].starts_with("supervisor:state") && lines[2].contains("running"));
        assert!(lines[4].contains("0.9 ms") && lines[4].contains("2026-01-21T00:06:47Z"));
        assert!(lines[6].starts_with("pass: "));
        let status_col = lines[1].find("STATUS").unwrap();
        assert_eq!(&lines[3][status_col..status_col + 4], "pass");
    }

    #[test]
    fn the_table_names_the_migration_locks_holder() {
        let body = r#"{"status":"fail","checks":{"supervisor:state":[{"status":"fail","observedValue":"starting","output":"waiting for migration lock","lockHolder":{"pid":4242,"applicationName":"supervisor@web-1","clientAddress":"10.0.0.7:53122","heldSeconds":42}}],"other":[{"lockHolder":{"pid":7}}]}}"#;
        let target = Target::from_health_addr("0.0.0.0:8081", "/health").unwrap();
        let table = table(&outcome(503, "application/health+json", body), &target);
        assert!(
            table.contains(r#"waiting for migration lock: held by pid 4242 ("supervisor@web-1" from 10.0.0.7:53122, for 42s)"#),
            "{table}"
        );
        let other = table.lines().find(|l| l.starts_with("other")).unwrap();
        assert!(
            other.contains("held by pid 7 ") && !other.contains('('),
            "{other}"
        );
    }

    #[test]
    fn json_for_text_answers_and_failures_is_built() {
        let text = json(&outcome(
            503,
            "text/plain",
            "[+]app ok\n[-]postgres failed: reason withheld\n",
        ));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["status"], "fail");
        assert_eq!(value["checks"]["postgres"][0]["output"], "reason withheld");
        assert_eq!(value["checks"]["app"][0]["status"], "pass");
        let failed: Outcome = Err(Failure::Malformed {
            authority: "h:1".into(),
            reason: "not JSON \u{1b}[2J".into(),
        });
        let text = json(&failed);
        assert!(!text.contains('\u{1b}'));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value["output"],
            "malformed answer from h:1: not JSON \u{1b}[2J"
        );
    }
}
