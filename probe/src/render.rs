//! The three output forms: the one-line summary, the `--verbose` table and the `--json` document.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::outcome::Outcome;
use crate::report::{Report, Source, Status};
use crate::sanitize::{escape_json_text, truncate_bytes, MAX_LINE_BYTES};
use crate::target::Target;

/// A component that informs rather than decides.
const INFORMATIONAL: &str = "migrations";

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

fn report_line(report: &Report, with_time: bool) -> String {
    let components = report.components();
    let shown: Vec<_> = match report.status {
        // Healthy: the roll-call of what readiness depends on. The supervisor's `migrations` entry only
        // reports the schema version (shown by --verbose), so a passing one is left out of the line.
        // Unhealthy: only what is wrong, so the cause fits in the line.
        Status::Pass => components
            .iter()
            .filter(|(name, status, _)| !(name == INFORMATIONAL && *status == Some(Status::Pass)))
            .collect(),
        Status::Warn | Status::Fail => components
            .iter()
            .filter(|(_, status, _)| status.is_some_and(|s| s > Status::Pass))
            .collect(),
    };
    let mut parts: Vec<String> = shown
        .into_iter()
        .map(|(name, status, output)| {
            let status = status.map_or("unknown", Status::as_str);
            match output {
                Some(output) => format!("{name}={status}({output})"),
                None => format!("{name}={status}"),
            }
        })
        .collect();
    if parts.is_empty() {
        match (&report.output, report.status, report.http_status) {
            (Some(output), _, _) => parts.push(output.clone()),
            (None, Status::Fail, 503) => parts.push("HTTP 503 (no failing check named)".into()),
            (None, Status::Fail, _) => parts.push("no failing check named".into()),
            (None, _, _) => {}
        }
    }
    let mut line = report.status.as_str().to_owned();
    if !parts.is_empty() {
        line.push_str(": ");
        line.push_str(&parts.join(" "));
    }
    if with_time && report.status != Status::Fail {
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
    if !report.checks.is_empty() {
        let header = ["CHECK", "STATUS", "OBSERVED", "OUTPUT", "TIME"];
        let rows: Vec<[String; 5]> = report
            .checks
            .iter()
            .map(|check| {
                let observed = match (&check.observed, &check.unit) {
                    (Some(value), Some(unit)) => format!("{value} {unit}"),
                    (Some(value), None) => value.clone(),
                    (None, _) => "-".into(),
                };
                [
                    check.name.clone(),
                    check.status.map_or("unknown", Status::as_str).to_owned(),
                    observed,
                    match (&check.output, &check.lock_holder) {
                        (Some(output), Some(holder)) => format!("{output}: held by {holder}"),
                        (None, Some(holder)) => format!("held by {holder}"),
                        (output, None) => output.clone().unwrap_or_else(|| "-".into()),
                    },
                    check.time.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut push_row = |cells: [&str; 5]| {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        };
        push_row(header);
        for row in &rows {
            push_row([&row[0], &row[1], &row[2], &row[3], &row[4]]);
        }
    }
    out.push_str(&summary_line(outcome, true));
    out.push('\n');
    out
}

/// The health document as received (made terminal-safe), or one built from a text answer or a failure so
/// scripts always get JSON with a `status`.
pub fn json(outcome: &Outcome) -> String {
    let value = match outcome {
        Ok(Report {
            source: Source::Document { text },
            ..
        }) => {
            let mut text = escape_json_text(text.trim());
            text.push('\n');
            return text;
        }
        Ok(report) => {
            let mut checks = Map::new();
            for check in &report.checks {
                let mut entry = Map::new();
                if let Some(status) = check.status {
                    entry.insert("status".into(), status.as_str().into());
                }
                if let Some(output) = &check.output {
                    entry.insert("output".into(), output.as_str().into());
                }
                let list = checks
                    .entry(check.name.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = list {
                    list.push(Value::Object(entry));
                }
            }
            json!({"status": report.status.as_str(), "checks": checks})
        }
        Err(failure) => json!({"status": "fail", "output": failure.to_string()}),
    };
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    escape_json_text(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{FetchError, Response};
    use crate::outcome::Failure;
    use std::time::Duration;

    fn outcome(status: u16, content_type: &str, body: &str) -> Outcome {
        let response = Response {
            status,
            reason: String::new(),
            content_type: Some(content_type.into()),
            body: body.as_bytes().to_vec(),
            elapsed: Duration::from_micros(912),
        };
        Ok(Report::from_response(&response).unwrap())
    }

    fn fixture(status: u16, name: &str) -> Outcome {
        let body = match name {
            "pass" => include_str!("../tests/fixtures/health-pass.json"),
            "warn" => include_str!("../tests/fixtures/health-warn.json"),
            _ => include_str!("../tests/fixtures/health-fail.json"),
        };
        outcome(status, "application/health+json", body)
    }

    #[test]
    fn lines_for_each_verdict() {
        assert_eq!(
            summary_line(&fixture(200, "pass"), true),
            "pass: supervisor=pass app=pass postgres=pass (0.9 ms)"
        );
        assert_eq!(
            summary_line(&fixture(200, "warn"), true),
            "warn: postgres=warn(timeout) (0.9 ms)"
        );
        assert_eq!(
            summary_line(&fixture(503, "fail"), true),
            "fail: postgres=fail(connection refused)"
        );
        assert_eq!(
            summary_line(&fixture(200, "pass"), false),
            "pass: supervisor=pass app=pass postgres=pass"
        );
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
        let excluded = outcome(200, "text/plain", "[+]app ok\n[+]postgres excluded: ok\n");
        assert_eq!(
            summary_line(&excluded, false),
            "pass: app=pass postgres=pass(excluded)"
        );
    }

    #[test]
    fn failure_lines() {
        let refused: Outcome = Err(Failure::Fetch(FetchError::Connect {
            authority: "127.0.0.1:8081".into(),
            reason: "connection refused".into(),
        }));
        assert_eq!(
            summary_line(&refused, true),
            "fail: cannot connect to 127.0.0.1:8081: connection refused"
        );
        let timeout: Outcome = Err(Failure::Fetch(FetchError::Timeout {
            authority: "127.0.0.1:8081".into(),
            limit: Duration::from_secs(2),
        }));
        assert_eq!(
            summary_line(&timeout, true),
            "fail: no answer from 127.0.0.1:8081 within 2s"
        );
    }

    #[test]
    fn lines_never_exceed_256_bytes() {
        let mut checks = String::new();
        for i in 0..100 {
            checks.push_str(&format!(
                r#""component{i}:x":[{{"status":"fail","output":"{}"}}],"#,
                "é".repeat(50)
            ));
        }
        let body = format!(
            r#"{{"status":"fail","checks":{{{}}}}}"#,
            checks.trim_end_matches(',')
        );
        let line = summary_line(&outcome(503, "application/health+json", &body), true);
        assert!(line.len() <= MAX_LINE_BYTES, "{} bytes", line.len());
        assert!(line.starts_with("fail: component0=fail("));
    }

    #[test]
    fn table_lists_every_entry() {
        let target = Target::from_health_addr("0.0.0.0:8081", "/health").unwrap();
        let table = table(&fixture(200, "pass"), &target);
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(
            lines[0],
            "GET http://127.0.0.1:8081/health: HTTP 200 in 0.9 ms"
        );
        assert!(lines[1].starts_with("CHECK") && lines[1].contains("OBSERVED"));
        assert!(lines[2].starts_with("supervisor:state") && lines[2].contains("running"));
        assert!(lines[4].contains("0.9 ms") && lines[4].contains("2026-01-21T00:06:47Z"));
        assert!(lines[6].starts_with("pass: "));
        // Columns line up.
        let status_col = lines[1].find("STATUS").unwrap();
        assert_eq!(&lines[3][status_col..status_col + 4], "pass");
    }

    #[test]
    fn json_is_the_document_or_a_built_one() {
        let doc = json(&fixture(200, "pass"));
        let value: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(value["checks"]["app:uptime"][0]["pid"], 42);
        let text = json(&outcome(
            503,
            "text/plain",
            "[-]postgres failed: reason withheld\n",
        ));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["status"], "fail");
        assert_eq!(value["checks"]["postgres"][0]["output"], "reason withheld");
        let failed: Outcome = Err(Failure::Malformed {
            authority: "h:1".into(),
            reason: "not JSON".into(),
        });
        let value: Value = serde_json::from_str(&json(&failed)).unwrap();
        assert_eq!(value["output"], "malformed answer from h:1: not JSON");
    }
}
