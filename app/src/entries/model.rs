//! The time entry as the API shows it, and the rules every stored entry obeys.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Problem;

/// Longest accepted project name, in characters.
pub const MAX_PROJECT_CHARS: usize = 255;
/// Longest accepted description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Longest accepted external id, in characters (the column's CHECK).
pub const MAX_EXTERNAL_ID_CHARS: usize = 255;
/// Longest accepted single entry: a leap year, in hours.
pub const MAX_DURATION_HOURS: f64 = 366.0 * 24.0;
/// Source given to entries created through the API without one.
pub const MANUAL_SOURCE: &str = "manual";

/// A stored time entry, serialized as the API's `TimeEntry`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeEntry {
    pub id: Uuid,
    pub source: String,
    pub external_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub date: OffsetDateTime,
    pub duration: f64,
    pub project: String,
    pub description: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl TimeEntry {
    /// From a row of the columns in [`crate::entries::store::COLUMNS`], in that order.
    pub fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(TimeEntry {
            id: row.try_get(0)?,
            source: row.try_get(1)?,
            external_id: row.try_get(2)?,
            date: row.try_get(3)?,
            duration: row.try_get(4)?,
            project: row.try_get(5)?,
            description: row.try_get(6)?,
            created_at: row.try_get(7)?,
            updated_at: row.try_get(8)?,
        })
    }
}

/// PostgreSQL text cannot hold NUL; refuse it rather than fail at insert time.
fn check_text(value: &str, max_chars: usize) -> Result<(), String> {
    if value.contains('\0') {
        return Err("must not contain NUL characters".to_owned());
    }
    if value.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    Ok(())
}

pub fn check_project(value: &str) -> Result<(), String> {
    check_text(value, MAX_PROJECT_CHARS)
}

pub fn check_description(value: &str) -> Result<(), String> {
    check_text(value, MAX_DESCRIPTION_CHARS)
}

pub fn check_external_id(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    check_text(value, MAX_EXTERNAL_ID_CHARS)
}

/// A duration as stored: `-0.0` (which passes `>= 0`) becomes `0.0`, so that it is not
/// stored and answered as `-0.0`.
pub fn stored_duration(hours: f64) -> f64 {
    // IEEE 754: -0.0 + 0.0 is +0.0; every other value is unchanged.
    hours + 0.0
}

pub fn check_duration_hours(hours: f64) -> Result<(), String> {
    if !hours.is_finite() || hours < 0.0 {
        return Err("must be a number of hours >= 0".to_owned());
    }
    if hours > MAX_DURATION_HOURS {
        return Err(format!("must be at most {MAX_DURATION_HOURS} hours"));
    }
    Ok(())
}

/// The same rule as the column's CHECK: `^[a-z][a-z0-9_-]{0,31}$`.
pub fn check_source(value: &str) -> Result<(), String> {
    let mut chars = value.chars();
    let ok = matches!(chars.next(), Some('a'..='z'))
        && value.len() <= 32
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err("must match ^[a-z][a-z0-9_-]{0,31}$".to_owned())
    }
}

/// Years the API accepts: RFC 3339 needs four digits, and far-past dates are typos.
pub fn check_date(date: OffsetDateTime) -> Result<(), String> {
    // Compared as Unix time: converting to UTC first could overflow year 9999 and panic.
    const START_OF_1900: i64 = -2_208_988_800;
    const START_OF_10000: i64 = 253_402_300_800;
    if (START_OF_1900..START_OF_10000).contains(&date.unix_timestamp()) {
        Ok(())
    } else {
        Err("must be between the years 1900 and 9999".to_owned())
    }
}

/// The body of `POST /api/entries`. Missing or mistyped fields are a 400 naming
/// them (by the JSON decoder); values out of range are 422 problems.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateEntryBody {
    #[serde(with = "time::serde::rfc3339")]
    pub date: OffsetDateTime,
    pub duration: f64,
    #[serde(default, deserialize_with = "present")]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub external_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub project: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
}

/// An optional field that, when given, must not be `null` (absent means "keep" or "default";
/// null would be a third meaning nobody asked for).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// [`present`] for an RFC 3339 date-time.
fn present_date<'de, D>(deserializer: D) -> Result<Option<OffsetDateTime>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    time::serde::rfc3339::deserialize(deserializer).map(Some)
}

/// The body of `PATCH /api/entries/{id}`: any subset of the writable fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EntryChanges {
    #[serde(default, deserialize_with = "present_date")]
    pub date: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "present")]
    pub duration: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub external_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub project: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
}

/// Fields of a new entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub id: Uuid,
    pub source: String,
    pub external_id: String,
    pub date: OffsetDateTime,
    pub duration: f64,
    pub project: String,
    pub description: String,
}

/// Checks the fields that are present; every problem is listed.
fn check_changes(changes: &EntryChanges) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut check = |field: &str, result: Result<(), String>| {
        if let Err(message) = result {
            problems.push(Problem::field(field, message));
        }
    };
    if let Some(date) = changes.date {
        check("date", check_date(date));
    }
    if let Some(duration) = changes.duration {
        check("duration", check_duration_hours(duration));
    }
    if let Some(source) = &changes.source {
        check("source", check_source(source));
    }
    if let Some(external_id) = &changes.external_id {
        check("externalId", check_external_id(external_id));
    }
    if let Some(project) = &changes.project {
        check("project", check_project(project));
    }
    if let Some(description) = &changes.description {
        check("description", check_description(description));
    }
    problems
}

impl CreateEntryBody {
    /// Validates the values; a new id is drawn here.
    pub fn validate(self) -> Result<NewEntry, Vec<Problem>> {
        let changes = EntryChanges {
            date: Some(self.date),
            duration: Some(self.duration),
            source: self.source,
            external_id: self.external_id,
            project: self.project,
            description: self.description,
        };
        let problems = check_changes(&changes);
        if !problems.is_empty() {
            return Err(problems);
        }
        let id = Uuid::now_v7();
        let duration = stored_duration(self.duration);
        Ok(NewEntry {
            id,
            source: changes.source.unwrap_or_else(|| MANUAL_SOURCE.to_owned()),
            // A manual entry is its own origin: its id doubles as the external id.
            external_id: changes.external_id.unwrap_or_else(|| id.to_string()),
            date: self.date,
            duration,
            project: changes.project.unwrap_or_default(),
            description: changes.description.unwrap_or_default(),
        })
    }
}

impl EntryChanges {
    /// Validates the values; at least one field must be given.
    pub fn validate(mut self) -> Result<EntryChanges, Vec<Problem>> {
        if self == EntryChanges::default() {
            return Err(vec![Problem {
                index: None,
                line: None,
                field: None,
                message: "name at least one field to change (date, duration, source, externalId, project, description)".to_owned(),
            }]);
        }
        let problems = check_changes(&self);
        self.duration = self.duration.map(stored_duration);
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::decode_json;

    fn fields(problems: &[Problem]) -> Vec<&str> {
        problems.iter().filter_map(|p| p.field.as_deref()).collect()
    }

    fn create(body: &str) -> Result<NewEntry, Vec<Problem>> {
        decode_json::<CreateEntryBody>(body.as_bytes())
            .expect("decodes")
            .validate()
    }

    #[test]
    fn new_entry_defaults_to_a_manual_source_and_its_own_id() {
        let entry = create(r#"{"date": "2024-03-10T09:00:00+01:00", "duration": 1.5}"#).unwrap();
        assert_eq!(entry.source, "manual");
        assert_eq!(entry.external_id, entry.id.to_string());
        assert_eq!(entry.date.unix_timestamp(), 1_710_057_600);
        assert_eq!(entry.project, "");
    }

    #[test]
    fn new_entry_lists_every_problem() {
        let long = "ä".repeat(MAX_DESCRIPTION_CHARS + 1);
        let problems = create(&format!(
            r#"{{"date": "0001-01-01T00:00:00Z", "duration": -1, "source": "Bad Source",
                "externalId": "", "project": "x", "description": "{long}"}}"#
        ))
        .unwrap_err();
        assert_eq!(
            fields(&problems),
            ["date", "duration", "source", "externalId", "description"]
        );
        assert!(create(r#"{"date": "2024-03-10T09:00:00Z", "duration": 1e9}"#).is_err());
        // Year 10000 in UTC, and the last instant of 1899: refused, without panicking.
        for date in ["9999-12-31T23:59:59-23:59", "1900-01-01T00:59:59+01:00"] {
            let body = format!(r#"{{"date": "{date}", "duration": 1}}"#);
            assert_eq!(fields(&create(&body).unwrap_err()), ["date"], "{date}");
        }
        assert!(create(r#"{"date": "9999-12-31T23:59:59Z", "duration": 1}"#).is_ok());
        assert!(create(r#"{"date": "1900-01-01T00:00:00Z", "duration": 1}"#).is_ok());
    }

    #[test]
    fn mistyped_missing_and_unknown_fields_are_400s_naming_them() {
        for (body, field) in [
            (r#"{"duration": 1}"#, "date"),
            (r#"{"date": "2024-13-01T00:00:00Z", "duration": 1}"#, "date"),
            (
                r#"{"date": "2024-03-10T09:00:00Z", "duration": "2h"}"#,
                "duration",
            ),
            (
                r#"{"date": "2024-03-10T09:00:00Z", "duration": 1, "project": 3}"#,
                "project",
            ),
        ] {
            let err = decode_json::<CreateEntryBody>(body.as_bytes()).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(err.field(), Some(field), "{body}: {err}");
        }
        let err = decode_json::<CreateEntryBody>(
            br#"{"date": "2024-03-10T09:00:00Z", "duration": 1, "colour": "red"}"#,
        )
        .unwrap_err();
        assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
        assert!(err.message.contains("colour"), "{err}");
    }

    #[test]
    fn patch_needs_a_field_and_checks_what_it_gets() {
        let empty: EntryChanges = decode_json(b"{}").unwrap();
        assert!(empty.validate().is_err());
        let changes: EntryChanges = decode_json(r#"{"project": "Ünïcode ✓"}"#.as_bytes()).unwrap();
        let changes = changes.validate().unwrap();
        assert_eq!(changes.project.as_deref(), Some("Ünïcode ✓"));
        assert!(changes.date.is_none());
        for body in [
            r#"{"date": null}"#,
            r#"{"project": null}"#,
            r#"{"duration": null}"#,
        ] {
            let err = decode_json::<EntryChanges>(body.as_bytes()).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST, "{body}");
        }
        let bad: EntryChanges = decode_json(br#"{"duration": -2, "source": "X"}"#).unwrap();
        assert_eq!(fields(&bad.validate().unwrap_err()), ["duration", "source"]);
    }

    #[test]
    fn negative_zero_durations_are_stored_as_zero() {
        let entry = create(r#"{"date": "2024-03-10T09:00:00Z", "duration": -0.0}"#).unwrap();
        assert!(entry.duration == 0.0 && entry.duration.is_sign_positive());
        let changes: EntryChanges = decode_json(br#"{"duration": -0.0}"#).unwrap();
        let duration = changes.validate().unwrap().duration.unwrap();
        assert!(duration == 0.0 && duration.is_sign_positive());
        assert_eq!(stored_duration(1.5), 1.5);
    }

    #[test]
    fn source_rule_matches_the_schema() {
        assert!(check_source("toggl-csv").is_ok());
        assert!(check_source("a").is_ok());
        assert!(check_source(&"a".repeat(32)).is_ok());
        assert!(check_source(&"a".repeat(33)).is_err());
        assert!(check_source("1abc").is_err());
        assert!(check_source("").is_err());
        assert!(check_source("abç").is_err());
    }
}
