//! Tempo Cloud REST API v4 worklogs: `{"results":[...]}` as a page of
//! `GET /4/worklogs` returns it, or a bare array of worklogs.

use serde_json::Value;
use time::macros::format_description;
use time::{Date, PrimitiveDateTime, Time};

use super::{
    check_common, hours, problem, read_id, read_items, read_optional_string, unreadable,
    whole_number, Document, ImportRecord, Location, Parsed, Problems, Records, Shape, StartTime,
    ID_RULE, SCALAR,
};

pub const SOURCE: &str = "tempo";

/// The members of a worklog the parser reads.
static ITEM: Shape = Shape(&[
    ("tempoWorklogId", SCALAR),
    ("timeSpentSeconds", SCALAR),
    ("startDate", SCALAR),
    ("startTime", SCALAR),
    ("description", SCALAR),
    ("issue", Shape(&[("key", SCALAR), ("id", SCALAR)])),
]);

/// Parses Tempo v4 worklogs.
///
/// `startDate` + `startTime` are the worker's wall-clock time (placed on the
/// time line by the import's `tz`); the project is the Jira issue's key, else
/// its numeric id.
pub fn parse(bytes: &[u8]) -> Result<Parsed, Problems> {
    let mut problems = Problems::new();
    let mut records = Records::new();
    let document = read_items(bytes, Some("results"), &ITEM, &mut |index, item| {
        if let Some(record) = parse_item(index, &item, &mut problems) {
            records.push(Location::Index(index), record, &mut problems);
        }
    });
    match document {
        Ok(Document::Items) => {}
        Ok(Document::NoItems) => problems.push(problem(
            Location::Document,
            Some("results"),
            "expected an array of Tempo worklogs",
        )),
        Ok(Document::Other) => problems.push(problem(
            Location::Document,
            None,
            "expected {\"results\": [...]} or an array of Tempo worklogs",
        )),
        Err(err) => problems.push(unreadable(err)),
    }
    let records = records.dedupe("tempoWorklogId", &mut problems);
    problems.or_ok(Parsed {
        records,
        skipped: 0,
    })
}

fn parse_item(index: usize, item: &Value, problems: &mut Problems) -> Option<ImportRecord> {
    let at = Location::Index(index);
    let before = problems.total();
    let Some(object) = item.as_object() else {
        problems.push(problem(at, None, "expected a JSON object"));
        return None;
    };
    let mut report = |field: &str, message: &str| {
        problems.push(problem(at, Some(field), message));
    };

    let external_id = read_id(object, "tempoWorklogId", &mut report);

    let seconds = match object.get("timeSpentSeconds") {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if s >= 0.0 => s,
            _ => {
                report("timeSpentSeconds", "must be a number of seconds >= 0");
                0.0
            }
        },
        None | Some(Value::Null) => {
            report("timeSpentSeconds", "is required");
            0.0
        }
        Some(_) => {
            report("timeSpentSeconds", "must be a number of seconds >= 0");
            0.0
        }
    };

    let date = match object.get("startDate") {
        Some(Value::String(s)) => match Date::parse(s, format_description!("[year]-[month]-[day]"))
        {
            // 9998 at most: a wall-clock time in 9999 could pass year 9999 in UTC.
            Ok(d) if (1900..=9998).contains(&d.year()) => Some(d),
            _ => {
                report(
                    "startDate",
                    "must be a date YYYY-MM-DD (years 1900 to 9998)",
                );
                None
            }
        },
        None | Some(Value::Null) => {
            report("startDate", "is required");
            None
        }
        Some(_) => {
            report("startDate", "must be a date string YYYY-MM-DD");
            None
        }
    };

    let start_time = match object.get("startTime") {
        None | Some(Value::Null) => Some(Time::MIDNIGHT),
        Some(Value::String(s)) => match parse_time(s) {
            Some(t) => Some(t),
            None => {
                report("startTime", "must be a time HH:MM:SS");
                None
            }
        },
        Some(_) => {
            report("startTime", "must be a time string HH:MM:SS");
            None
        }
    };

    let description = read_optional_string(object, "description", &mut report).unwrap_or_default();

    let project = match object.get("issue") {
        None | Some(Value::Null) => String::new(),
        Some(Value::Object(issue)) if !is_issue_id(issue.get("id")) => {
            report("issue", &format!("id {ID_RULE}"));
            String::new()
        }
        Some(Value::Object(issue)) => match (issue.get("key"), issue.get("id")) {
            (Some(Value::String(key)), _) => key.clone(),
            // `is_issue_id` has checked the number.
            (None | Some(Value::Null), Some(Value::Number(id))) => {
                whole_number(id).unwrap_or_default().to_string()
            }
            (None | Some(Value::Null), Some(Value::String(id))) => id.clone(),
            _ => {
                report("issue", "must have a string key or an integer id");
                String::new()
            }
        },
        Some(_) => {
            report("issue", "must be an object with a key or an id");
            String::new()
        }
    };

    let duration = hours(seconds);
    check_common(
        at,
        "timeSpentSeconds",
        duration,
        &project,
        &description,
        problems,
    );
    match (date, start_time, problems.total() == before) {
        (Some(date), Some(time), true) => Some(ImportRecord {
            external_id,
            start: StartTime::Local(PrimitiveDateTime::new(date, time)),
            duration,
            project,
            description,
        }),
        _ => None,
    }
}

/// An issue id as Tempo writes it (an integer), a string, or none.
fn is_issue_id(id: Option<&Value>) -> bool {
    match id {
        None | Some(Value::Null | Value::String(_)) => true,
        Some(Value::Number(n)) => whole_number(n).is_some(),
        Some(_) => false,
    }
}

/// `HH:MM:SS`, or `HH:MM` as some clients write it.
fn parse_time(s: &str) -> Option<Time> {
    Time::parse(s, format_description!("[hour]:[minute]:[second]"))
        .or_else(|_| Time::parse(s, format_description!("[hour]:[minute]")))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imports::fields_by_index;
    use serde_json::json;
    use time::macros::datetime;

    fn parse(document: &Value) -> Result<Parsed, Problems> {
        super::parse(document.to_string().as_bytes())
    }

    #[test]
    fn reads_a_results_page_and_a_bare_array_alike() {
        let worklogs = json!([
            {"self": "https://api.tempo.io/4/worklogs/126", "tempoWorklogId": 126,
             "issue": {"self": "https://x.atlassian.net/rest/api/2/issue/10010", "id": 10010, "key": "ŽÅ-12"},
             "timeSpentSeconds": 5400, "billableSeconds": 5400, "startDate": "2024-03-31",
             "startTime": "01:30:00", "description": "across the DST change",
             "author": {"accountId": "abc"}},
            {"tempoWorklogId": 127, "issue": {"id": 10011}, "timeSpentSeconds": 900,
             "startDate": "2024-03-31"}
        ]);
        let from_array = parse(&worklogs).unwrap();
        let from_page = parse(&json!({"metadata": {"count": 2}, "results": worklogs})).unwrap();
        assert_eq!(from_array, from_page);
        let r = &from_array.records;
        assert_eq!(r[0].external_id, "126");
        assert_eq!(r[0].project, "ŽÅ-12");
        assert_eq!(r[0].duration, 1.5);
        assert_eq!(r[0].start, StartTime::Local(datetime!(2024-03-31 01:30)));
        assert_eq!(r[1].project, "10011");
        assert_eq!(r[1].start, StartTime::Local(datetime!(2024-03-31 00:00)));
    }

    #[test]
    fn lists_every_problem_by_index() {
        let problems = parse(&json!({"results": [
            {"tempoWorklogId": 1, "timeSpentSeconds": 60, "startDate": "2024-03-10"},
            {"tempoWorklogId": "", "timeSpentSeconds": -5, "startDate": "10/03/2024", "startTime": "25:00:00"},
            {"tempoWorklogId": 3, "startDate": "2024-03-10", "issue": "PROJ-1"}
        ]}))
        .unwrap_err();
        assert_eq!(
            fields_by_index(&problems),
            [
                (Some(1), Some("tempoWorklogId")),
                (Some(1), Some("timeSpentSeconds")),
                (Some(1), Some("startDate")),
                (Some(1), Some("startTime")),
                (Some(2), Some("timeSpentSeconds")),
                (Some(2), Some("issue")),
            ]
        );
        assert!(parse(&json!({"results": {}})).is_err());
        let problems = parse(&json!([{"tempoWorklogId": 1, "timeSpentSeconds": 60,
            "startDate": "2024-03-10", "issue": {"key": "A-1", "id": {}}}]))
        .unwrap_err();
        assert_eq!(problems.listed()[0].field.as_deref(), Some("issue"));
        assert!(parse(&json!("worklogs")).is_err());
    }
}
