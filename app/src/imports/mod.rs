//! Imports of time entries exported by other tools.
//!
//! Each format has a parser that turns the uploaded bytes into normalized
//! [`ImportRecord`]s or into the complete list of [`Problem`]s; nothing is
//! written unless the whole file is valid. [`store`] then upserts the records
//! in one transaction so that re-importing a file changes nothing.

pub mod handlers;
pub mod multipart;
pub mod store;
pub mod tempo;
pub mod toggl;
pub mod toggl_csv;

pub use handlers::register_routes;

use std::collections::HashMap;

use time::{OffsetDateTime, PrimitiveDateTime};

use crate::entries::model::{check_description, check_duration_hours, check_project};

/// When an imported entry started.
///
/// Toggl's JSON carries offsets; Tempo worklogs and Toggl's CSV report carry
/// wall-clock times of the exporting user, which are placed on the time line
/// with the import's `tz` parameter (by PostgreSQL, so DST follows its tz data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTime {
    Utc(OffsetDateTime),
    Local(PrimitiveDateTime),
}

/// One time entry as read from an export, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRecord {
    pub external_id: String,
    pub start: StartTime,
    /// Hours, finite and >= 0.
    pub duration: f64,
    pub project: String,
    pub description: String,
}

/// Where in the uploaded file a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Zero-based position of the item in a JSON array.
    Index(usize),
    /// One-based line of a CSV file (where the record starts).
    Line(u64),
    /// The document as a whole.
    Document,
}

pub use crate::error::Problem;

/// A problem at `at`, naming `field` when there is one.
pub(crate) fn problem(at: Location, field: Option<&str>, message: impl Into<String>) -> Problem {
    let problem = match at {
        Location::Index(i) => Problem::index(i, message),
        Location::Line(l) => Problem::line(l as usize, message),
        Location::Document => Problem {
            index: None,
            line: None,
            field: None,
            message: message.into(),
        },
    };
    match field {
        Some(f) => problem.with_field(f),
        None => problem,
    }
}

/// What a parser produced from a valid file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    pub records: Vec<ImportRecord>,
    /// Items deliberately left out (running or deleted Toggl entries).
    pub skipped: usize,
}

/// Checks the fields every format shares and collects their problems.
pub(crate) fn check_common(
    location: Location,
    duration_field: &str,
    duration: f64,
    project: &str,
    description: &str,
    problems: &mut Vec<Problem>,
) {
    if let Err(msg) = check_duration_hours(duration) {
        problems.push(problem(location, Some(duration_field), msg));
    }
    if let Err(msg) = check_project(project) {
        problems.push(problem(location, Some("project"), msg));
    }
    if let Err(msg) = check_description(description) {
        problems.push(problem(location, Some("description"), msg));
    }
}

/// Drops items that repeat an earlier one exactly and refuses ids that occur
/// with different content.
///
/// Exports fetched page by page or over overlapping ranges repeat entries
/// verbatim; those are the same entry and are stored once. The same id with
/// different content means the entry changed between two exports; no order in
/// the file says which version is right, so the import is refused (422) rather
/// than silently keeping one. Also required by the upsert: one statement may
/// not touch the same row twice.
pub(crate) fn dedupe(
    items: Vec<(Location, ImportRecord)>,
    id_field: &str,
    problems: &mut Vec<Problem>,
) -> Vec<ImportRecord> {
    let mut first_seen: HashMap<String, (Location, usize)> = HashMap::with_capacity(items.len());
    let mut kept: Vec<ImportRecord> = Vec::with_capacity(items.len());
    for (location, record) in items {
        match first_seen.get(&record.external_id) {
            None => {
                first_seen.insert(record.external_id.clone(), (location, kept.len()));
                kept.push(record);
            }
            Some((_, at)) if kept[*at] == record => {}
            Some((first, _)) => {
                let earlier = match first {
                    Location::Index(i) => format!("item {i}"),
                    Location::Line(l) => format!("line {l}"),
                    Location::Document => "the document".to_owned(),
                };
                problems.push(problem(
                    location,
                    Some(id_field),
                    format!(
                        "id {} also appears at {earlier} with different content",
                        record.external_id
                    ),
                ));
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn record(id: &str, description: &str) -> ImportRecord {
        ImportRecord {
            external_id: id.to_owned(),
            start: StartTime::Utc(datetime!(2024-03-10 09:00 UTC)),
            duration: 1.0,
            project: String::new(),
            description: description.to_owned(),
        }
    }

    #[test]
    fn identical_duplicates_collapse_and_conflicting_ones_are_problems() {
        let mut problems = Vec::new();
        let kept = dedupe(
            vec![
                (Location::Index(0), record("1", "a")),
                (Location::Index(1), record("2", "b")),
                (Location::Index(2), record("1", "a")),
                (Location::Index(3), record("2", "changed")),
            ],
            "id",
            &mut problems,
        );
        assert_eq!(kept, vec![record("1", "a"), record("2", "b")]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].index, Some(3));
        assert_eq!(problems[0].field.as_deref(), Some("id"));
        assert!(problems[0].message.contains("item 1"), "{:?}", problems[0]);
    }

    #[test]
    fn problem_serializes_its_location() {
        let p = problem(Location::Line(4), Some("Duration"), "bad");
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"line": 4, "field": "Duration", "message": "bad"})
        );
    }
}
