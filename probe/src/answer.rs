//! One probe: the bounded GET, then its answer read into a health document and an exit status. The answer is
//! the IETF document of `/health` (the supervisor's, or any server's that speaks the draft) or the verbose
//! text of `/readyz?verbose` and `/livez?verbose`, told apart by Content-Type, so `--url` works against either.

use std::time::Duration;

use common::health::{Checks, Document, Entry, Status};

use crate::http::{self, Failure, Response};
use crate::sanitize::clean;
use crate::target::Target;

/// Exit code for pass and warn.
pub const EXIT_HEALTHY: i32 = 0;
/// Exit code for fail, unreachable, timeout and malformed answers.
pub const EXIT_UNHEALTHY: i32 = 1;
/// Exit code for usage errors (BSD `EX_USAGE`); never 2, which Docker reserves.
pub const EXIT_USAGE: i32 = 64;

/// What one answer said. Text in `document` is as the server sent it: clean it before printing.
#[derive(Debug)]
pub struct Report {
    /// The document received, or one built from a text answer. Its status is the worse of the document's
    /// and the HTTP code's: a 503 carrying a passing document is still a failure to a load balancer.
    pub document: Document,
    /// The document's text as received (for `--json`); `None` for a text answer.
    pub received: Option<String>,
    pub http_status: u16,
    pub elapsed: Duration,
}

pub type Outcome = Result<Report, Failure>;

/// Fetches `target` within `limit` and reads the answer.
pub fn probe(target: &Target, limit: Duration) -> Outcome {
    read(&http::get(target, limit)?, &target.authority())
}

pub fn status(outcome: &Outcome) -> Status {
    outcome.as_ref().map_or(Status::Fail, |r| r.document.status)
}

pub fn exit_code(outcome: &Outcome) -> i32 {
    match status(outcome) {
        Status::Pass | Status::Warn => EXIT_HEALTHY,
        Status::Fail => EXIT_UNHEALTHY,
    }
}

/// Reads the answer `authority` gave.
pub fn read(response: &Response, authority: &str) -> Outcome {
    let malformed = |reason: String| Failure::Malformed {
        authority: authority.to_owned(),
        reason,
    };
    let http_verdict = match response.status {
        200 => Status::Pass,
        503 => Status::Fail,
        code => {
            return Err(Failure::HttpStatus {
                authority: authority.to_owned(),
                code,
                reason: response.reason.clone(),
            })
        }
    };
    let is_json = match response.content_type.as_deref() {
        Some(t) if t == "application/json" || t.ends_with("+json") => true,
        Some("text/plain") => false,
        Some(other) => return Err(malformed(format!("unexpected content type {other}"))),
        // No type given: judge by the first character.
        None => response.body.trim_ascii_start().starts_with(b"{"),
    };
    let text = std::str::from_utf8(&response.body).map_err(|e| {
        malformed(format!(
            "body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let (mut document, received) = if is_json {
        (from_json(text).map_err(malformed)?, Some(text.to_owned()))
    } else {
        (from_text(text, response.status).map_err(malformed)?, None)
    };
    document.status = document.status.max(http_verdict);
    Ok(Report {
        document,
        received,
        http_status: response.status,
        elapsed: response.elapsed,
    })
}

fn from_json(text: &str) -> Result<Document, String> {
    if text.trim().is_empty() {
        return Err("empty body".into());
    }
    serde_json::from_str(text).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "not JSON"
        } else {
            "not a health document"
        };
        format!("{what}: {}", clean(&e.to_string(), 100))
    })
}

/// Reads `ok`/`failed` or Kubernetes-style verbose lines (`[+]name ok`, `[+]name excluded: ok`,
/// `[-]name failed: reason`, then `... check passed`) into a document with an entry per line.
fn from_text(text: &str, http_status: u16) -> Result<Document, String> {
    let mut checks = Vec::new();
    let mut summary = None;
    for line in text.lines().map(str::trim) {
        let (status, rest) = if let Some(rest) = line.strip_prefix("[+]") {
            (Status::Pass, rest)
        } else if let Some(rest) = line.strip_prefix("[-]") {
            (Status::Fail, rest)
        } else {
            if line.ends_with("check passed") {
                summary = Some(Status::Pass);
            } else if line.ends_with("check failed") {
                summary = Some(Status::Fail);
            }
            continue;
        };
        let (name, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        let output = match status {
            // Shown, but it does not count.
            Status::Pass => (detail == "excluded: ok").then(|| "excluded".to_owned()),
            _ => detail
                .strip_prefix("failed")
                .map(|r| r.trim_start_matches(':').trim().to_owned())
                .filter(|r| !r.is_empty()),
        };
        let entry = Entry {
            status: Some(status),
            output,
            ..Entry::default()
        };
        checks.push((name.to_owned(), vec![entry]));
    }
    let status = match (checks.is_empty(), summary, text.trim()) {
        (false, _, _) | (_, Some(_), _) => checks
            .iter()
            .filter_map(|(_, entries)| entries[0].status)
            .chain(summary)
            .max()
            .unwrap_or(Status::Pass),
        (true, None, "ok") => Status::Pass,
        (true, None, "failed") => Status::Fail,
        // A 503 is a failure whatever its text; a 200 with other text is not a health endpoint.
        _ if http_status == 503 => Status::Fail,
        (true, None, "") => return Err("empty body".into()),
        (true, None, other) => {
            return Err(format!("not a health answer: {:?}", clean(other, 40)));
        }
    };
    Ok(Document {
        status,
        version: None,
        output: None,
        checks: Checks(checks),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, content_type: Option<&str>, body: &[u8]) -> Outcome {
        let response = Response {
            status,
            reason: "Whatever".into(),
            content_type: content_type.map(str::to_owned),
            body: body.to_vec(),
            elapsed: Duration::from_micros(900),
        };
        read(&response, "h:1")
    }

    fn malformed(outcome: Outcome) -> String {
        match outcome {
            Err(Failure::Malformed { reason, .. }) => reason,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    fn text(status: u16, body: &str) -> Outcome {
        answer(status, Some("text/plain"), body.as_bytes())
    }

    #[test]
    fn the_http_code_and_the_document_disagreeing_give_the_worse() {
        let json = |status, body: &str| answer(status, Some("application/json"), body.as_bytes());
        assert_eq!(status(&json(503, r#"{"status":"pass"}"#)), Status::Fail);
        assert_eq!(status(&json(200, r#"{"status":"fail"}"#)), Status::Fail);
        let warn = json(200, r#"{"status":"warn"}"#).unwrap();
        assert_eq!(warn.received.as_deref(), Some(r#"{"status":"warn"}"#));
        assert_eq!(exit_code(&Ok(warn)), EXIT_HEALTHY);
        let sniffed = answer(200, None, b" {\"status\":\"pass\"}").unwrap();
        assert!(sniffed.received.is_some());
        assert!(malformed(answer(200, Some("application/health+json"), b" ")).contains("empty"));
    }

    #[test]
    fn verbose_text_becomes_a_document() {
        let r = text(
            200,
            "[+]supervisor ok\n[+]app ok\n[+]postgres excluded: ok\nreadyz check passed\n",
        )
        .unwrap();
        assert_eq!(r.document.status, Status::Pass);
        assert_eq!(r.received, None);
        let names: Vec<_> = r.document.checks.0.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["supervisor", "app", "postgres"]);
        assert_eq!(
            r.document.checks.0[2].1[0].output.as_deref(),
            Some("excluded")
        );

        let r = text(
            503,
            "[+]app ok\n[-]postgres failed: reason withheld\nreadyz check failed\n",
        );
        let postgres = &r.unwrap().document.checks.0[1].1[0];
        assert_eq!(postgres.status, Some(Status::Fail));
        assert_eq!(postgres.output.as_deref(), Some("reason withheld"));
    }

    #[test]
    fn short_text_answers() {
        assert_eq!(status(&text(200, "ok")), Status::Pass);
        assert_eq!(status(&text(503, "failed")), Status::Fail);
        assert_eq!(status(&text(503, "anything")), Status::Fail);
        // A failing line in a 200 still fails.
        assert_eq!(status(&text(200, "[-]app failed\n")), Status::Fail);
        assert!(malformed(text(200, "")).contains("empty"));
        assert!(malformed(text(200, "ok\u{0}\u{ff}")).contains("not a health answer"));
    }
}
