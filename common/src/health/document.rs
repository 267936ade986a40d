//! The `application/health+json` document of the IETF health-check draft (draft-inadarei-api-health-check):
//! what the supervisor's `/health` serves, and what the probe reads from it or from any server that speaks
//! the draft.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::Status;

pub const CONTENT_TYPE: &str = "application/health+json";

/// A health document. Fields the draft defines that nothing here uses (`notes`, `links`, ...) are ignored
/// when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Received")]
pub struct Document {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why the service as a whole is not passing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Checks::is_empty")]
    pub checks: Checks,
}

/// A document as read, before its required `status` is checked (so that a missing one is named plainly).
#[derive(Deserialize)]
#[serde(expecting = "a health document (a JSON object)")]
struct Received {
    status: Option<Status>,
    #[serde(default)]
    version: Option<String>,
    /// The app's seed-compatible `/health` calls it `error`.
    #[serde(default, alias = "error")]
    output: Option<String>,
    #[serde(default)]
    checks: Checks,
    /// What the draft defines beyond these, unread. Being flattened, it also makes only an object a document.
    #[serde(flatten)]
    _others: serde::de::IgnoredAny,
}

impl TryFrom<Received> for Document {
    type Error = &'static str;

    fn try_from(received: Received) -> Result<Document, Self::Error> {
        Ok(Document {
            status: received.status.ok_or("document has no \"status\"")?,
            version: received.version,
            output: received.output,
            checks: received.checks,
        })
    }
}

/// The `checks` object: each key (`component:measurement`) with its entries, in the order they are sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checks(pub Vec<(String, Vec<Entry>)>);

impl Checks {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Checks {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, entries) in &self.0 {
            map.serialize_entry(name, entries)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Checks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Checks, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Checks;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of checks")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checks, A::Error> {
                let mut checks = Vec::new();
                while let Some(check) = map.next_entry()? {
                    checks.push(check);
                }
                Ok(Checks(checks))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// One entry of a check. `restarts`, `pid`, `rssBytes` and `lockHolder` are the supervisor's own additions to
/// the draft.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Entry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_holder: Option<LockHolder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// Who holds the migration lock that a starting supervisor waits for (on `supervisor:state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockHolder {
    pub pid: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_seconds: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Document, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_document_reads_back_as_written_in_the_same_order() {
        let document = Document {
            status: Status::Warn,
            version: Some("0.1.0".into()),
            output: None,
            checks: Checks(vec![
                (
                    "supervisor:state".into(),
                    vec![Entry {
                        status: Some(Status::Pass),
                        observed_value: Some("running".into()),
                        time: Some("2026-01-21T00:06:47Z".into()),
                        ..Entry::default()
                    }],
                ),
                (
                    "app:uptime".into(),
                    vec![Entry {
                        component_type: Some("component".into()),
                        status: Some(Status::Pass),
                        observed_value: Some(12.4.into()),
                        observed_unit: Some("s".into()),
                        restarts: Some(0),
                        pid: Some(42),
                        rss_bytes: Some(7_340_032),
                        ..Entry::default()
                    }],
                ),
                (
                    "postgres:responseTime".into(),
                    vec![Entry {
                        status: Some(Status::Warn),
                        output: Some("timeout".into()),
                        ..Entry::default()
                    }],
                ),
            ]),
        };
        let text = serde_json::to_string(&document).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"status":"warn","version":"0.1.0","checks":{"#,
                r#""supervisor:state":[{"status":"pass","observedValue":"running","time":"2026-01-21T00:06:47Z"}],"#,
                r#""app:uptime":[{"componentType":"component","status":"pass","observedValue":12.4,"#,
                r#""observedUnit":"s","restarts":0,"pid":42,"rssBytes":7340032}],"#,
                r#""postgres:responseTime":[{"status":"warn","output":"timeout"}]}}"#
            )
        );
        assert_eq!(read(&text).unwrap(), document);
    }

    #[test]
    fn other_servers_documents_are_read() {
        // The app's seed-compatible answer: an alias for the status, its reason under `error`.
        let app =
            read(r#"{"status":"unhealthy","error":"Database connection failed","timestamp":"x"}"#);
        let app = app.unwrap();
        assert_eq!(app.status, Status::Fail);
        assert_eq!(app.output.as_deref(), Some("Database connection failed"));
        assert!(app.checks.is_empty());
        let sparse = read(
            r#"{"status":"UP","checks":{"db":[{}],"cache:hits":[{"status":"down","observedValue":null}]}}"#,
        );
        let sparse = sparse.unwrap();
        assert_eq!(sparse.status, Status::Pass);
        assert_eq!(sparse.checks.0[0], ("db".into(), vec![Entry::default()]));
        assert_eq!(sparse.checks.0[1].1[0].status, Some(Status::Fail));
    }

    #[test]
    fn what_is_not_a_document_says_why() {
        for (text, expected) in [
            (r#"{"checks":{}}"#, "document has no \"status\""),
            (r#"{"status":"great"}"#, "unknown status \"great\""),
            (r#"{"status":1}"#, "invalid type"),
            (
                r#"{"status":"pass","status":"fail"}"#,
                "duplicate field `status`",
            ),
            (r#"{"status":"pass","checks":[]}"#, "an object of checks"),
            (
                r#"{"status":"pass","checks":{"a":{"status":"pass"}}}"#,
                "a sequence",
            ),
            (r#"{"status":"pass","checks":{"a":[1]}}"#, "struct Entry"),
            (
                r#"{"status":"pass","checks":{"a":[{"status":"meh"}]}}"#,
                "unknown status",
            ),
            (r#"["pass"]"#, "expected a health document (a JSON object)"),
        ] {
            let error = read(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
