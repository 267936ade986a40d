//! Toggl Track API v9 time entries: a JSON array as `GET /me/time_entries` returns it.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{
    check_common, hours, problem, read_id, read_items, read_optional_string, unreadable,
    whole_number, Document, ImportRecord, Location, Parsed, Problems, Records, Shape, StartTime,
    SCALAR,
};
use crate::entries::model::check_date;

pub const SOURCE: &str = "toggl";

/// The members of a time entry the parser reads.
static ITEM: Shape = Shape(&[
    ("id", SCALAR),
    ("duration", SCALAR),
    ("start", SCALAR),
    ("description", SCALAR),
    ("project_id", SCALAR),
    ("project_name", SCALAR),
    ("server_deleted_at", SCALAR),
]);

/// Parses a Toggl v9 time-entry array (a document that passed
/// [`crate::http::check_json`]).
///
/// Running entries (negative `duration`) and entries Toggl marks deleted
/// (`server_deleted_at`) are skipped. `project_name` (present with `meta=true`)
/// names the project, else the numeric `project_id`, else none.
pub fn parse(bytes: &[u8]) -> Result<Parsed, Problems> {
    let mut problems = Problems::new();
    let mut records = Records::new();
    let mut skipped = 0;
    let document = read_items(bytes, None, &ITEM, &mut |index, item| match parse_item(
        index,
        &item,
        &mut problems,
    ) {
        Item::Record(record) => records.push(Location::Index(index), record, &mut problems),
        Item::Skipped => skipped += 1,
        Item::Invalid => {}
    });
    match document {
        Ok(Document::Items) => {}
        Ok(Document::NoItems | Document::Other) => problems.push(problem(
            Location::Document,
            None,
            "expected a JSON array of Toggl time entries",
        )),
        Err(err) => problems.push(unreadable(err)),
    }
    let records = records.dedupe("id", &mut problems);
    problems.or_ok(Parsed { records, skipped })
}

const PROJECT_ID_RULE: &str = "must be an integer from 0 to 9007199254740991 (2^53 - 1) or null";

enum Item {
    Record(ImportRecord),
    Skipped,
    Invalid,
}

fn parse_item(index: usize, item: &Value, problems: &mut Problems) -> Item {
    let at = Location::Index(index);
    let before = problems.total();
    let Some(object) = item.as_object() else {
        problems.push(problem(at, None, "expected a JSON object"));
        return Item::Invalid;
    };
    let mut report = |field: &str, message: &str| {
        problems.push(problem(at, Some(field), message));
    };

    let external_id = read_id(object, "id", &mut report);

    let duration_seconds = match object.get("duration") {
        Some(Value::Number(n)) => n.as_f64(),
        None | Some(Value::Null) => {
            report("duration", "is required (seconds)");
            None
        }
        Some(_) => {
            report("duration", "must be a number of seconds");
            None
        }
    };

    let start = match object.get("start") {
        Some(Value::String(s)) => match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(start) => match check_date(start) {
                Ok(()) => Some(start),
                Err(m) => {
                    report("start", &m);
                    None
                }
            },
            Err(_) => {
                report("start", "must be an RFC 3339 date-time");
                None
            }
        },
        None | Some(Value::Null) => {
            report("start", "is required");
            None
        }
        Some(_) => {
            report("start", "must be an RFC 3339 date-time string");
            None
        }
    };

    let description = read_optional_string(object, "description", &mut report).unwrap_or_default();

    let project_id = match object.get("project_id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(id)) => match whole_number(id) {
            Some(id) => Some(id.to_string()),
            None => {
                report("project_id", PROJECT_ID_RULE);
                None
            }
        },
        Some(_) => {
            report("project_id", PROJECT_ID_RULE);
            None
        }
    };
    let project = read_optional_string(object, "project_name", &mut report)
        .unwrap_or_else(|| project_id.unwrap_or_default());

    let deleted = match object.get("server_deleted_at") {
        None | Some(Value::Null) => false,
        Some(Value::String(_)) => true,
        Some(_) => {
            report("server_deleted_at", "must be a date-time string or null");
            false
        }
    };
    // Toggl marks a running entry with a negative duration (-start epoch).
    let skip = deleted || duration_seconds.is_some_and(|s| s < 0.0);
    let duration = match duration_seconds {
        Some(seconds) if seconds >= 0.0 => hours(seconds),
        _ => 0.0,
    };
    // Skipped items are checked all the same: a file is valid or not as a whole.
    check_common(at, "duration", duration, &project, &description, problems);
    if skip {
        return if problems.total() == before && start.is_some() {
            Item::Skipped
        } else {
            Item::Invalid
        };
    }

    match (start, problems.total() == before) {
        (Some(start), true) => Item::Record(ImportRecord {
            external_id,
            start: StartTime::Utc(start),
            duration,
            project,
            description,
        }),
        _ => Item::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imports::{fields_by_index, ID_RULE, MAX_JSON_INTEGER};
    use serde_json::json;

    fn parse(document: &Value) -> Result<Parsed, Problems> {
        super::parse(document.to_string().as_bytes())
    }

    #[test]
    fn reads_entries_and_skips_running_and_deleted_ones() {
        let parsed = parse(&json!([
            {"id": 3_421_337_001_u64, "workspace_id": 7, "project_id": 55, "project_name": "Clïent wörk",
             "start": "2024-03-10T23:30:00+01:00", "stop": "2024-03-11T01:00:00+01:00",
             "duration": 5400, "description": "across midnight", "tags": ["a"]},
            {"id": 2, "start": "2024-03-10T09:00:00Z", "duration": -1_710_061_200, "description": "running"},
            {"id": 3, "start": "2024-03-10T09:00:00Z", "duration": 60, "server_deleted_at": "2024-03-11T00:00:00Z"},
            {"id": 4, "start": "2024-03-10T09:00:00Z", "duration": 900, "project_id": 12, "description": null},
            {"id": 5, "start": "2024-03-10T09:00:00Z", "duration": 0, "project_id": null}
        ]))
        .unwrap();
        assert_eq!(parsed.skipped, 2);
        let r = &parsed.records;
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].external_id, "3421337001");
        assert_eq!(r[0].duration, 1.5);
        assert_eq!(r[0].project, "Clïent wörk");
        assert_eq!(
            r[0].start,
            StartTime::Utc(time::macros::datetime!(2024-03-10 22:30 UTC))
        );
        assert_eq!(r[1].project, "12");
        assert_eq!(r[1].description, "");
        assert_eq!(r[1].duration, 0.25);
        assert_eq!(r[2].project, "");
    }

    #[test]
    fn lists_every_problem_by_index() {
        let problems = parse(&json!([
            {"id": 1, "start": "2024-03-10T09:00:00Z", "duration": 60},
            {"start": "yesterday", "duration": "1h"},
            "not an object",
            {"id": -4, "start": "2024-03-10T09:00:00Z", "duration": 60, "description": 5},
            {"id": 1, "start": "2024-03-10T09:00:00Z", "duration": 120}
        ]))
        .unwrap_err();
        assert_eq!(
            fields_by_index(&problems),
            [
                (Some(1), Some("id")),
                (Some(1), Some("duration")),
                (Some(1), Some("start")),
                (Some(2), None),
                (Some(3), Some("id")),
                (Some(3), Some("description")),
                (Some(4), Some("id")),
            ]
        );
    }

    #[test]
    fn skipped_items_are_still_checked() {
        let long = "x".repeat(300);
        let problems = parse(&json!([
            {"id": 1, "start": "2024-03-10T09:00:00Z", "duration": -5, "project_name": long},
            {"id": 2, "start": "2024-03-10T09:00:00Z", "duration": 5, "server_deleted_at": 7}
        ]))
        .unwrap_err();
        assert_eq!(
            fields_by_index(&problems),
            [
                (Some(0), Some("project")),
                (Some(1), Some("server_deleted_at"))
            ]
        );
    }

    #[test]
    fn rejects_a_non_array_document() {
        for document in [json!({"data": []}), json!("entries")] {
            let problems = parse(&document).unwrap_err();
            assert_eq!(problems.total(), 1);
            assert!(problems.listed()[0].index.is_none());
        }
    }

    #[test]
    fn whole_number_ids_in_any_notation_and_negative_zero() {
        let parsed = parse(&json!([
            {"id": 45409.0, "start": "2024-03-10T09:00:00Z", "duration": -0.0, "project_id": 7.0}
        ]))
        .unwrap();
        let record = &parsed.records[0];
        assert_eq!(record.external_id, "45409");
        assert_eq!(record.project, "7");
        assert!(record.duration == 0.0 && record.duration.is_sign_positive());
        assert_eq!(parsed.skipped, 0);
        let problems = parse(&json!([
            {"id": 45409.5, "start": "2024-03-10T09:00:00Z", "duration": 1},
            {"id": 9_007_199_254_740_992_u64, "start": "2024-03-10T09:00:00Z", "duration": 1}
        ]))
        .unwrap_err();
        assert_eq!(problems.total(), 2);
        assert!(ID_RULE.contains(&MAX_JSON_INTEGER.to_string()));
    }

    #[test]
    fn a_file_of_empty_objects_lists_the_first_problems_and_counts_all() {
        let body = format!("[{}{{}}]", "{},".repeat(9_999));
        let problems = super::parse(body.as_bytes()).unwrap_err();
        assert_eq!(problems.total(), 30_000);
        assert_eq!(problems.listed().len(), crate::error::MAX_LISTED_PROBLEMS);
        assert_eq!(problems.listed()[0].index, Some(0));
        assert_eq!(problems.listed()[99].index, Some(33));
    }
}
