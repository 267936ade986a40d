//! Imports of time entries exported by other tools.
//!
//! Each format has a parser that turns the uploaded bytes into normalized
//! [`ImportRecord`]s or into [`Problems`] (the first ones and their count);
//! nothing is written unless the whole file is valid. [`store`] then upserts the
//! records in one transaction so that re-importing a file changes nothing.
//!
//! Memory stays proportional to what is imported, not to how the file is written:
//! JSON items are read one at a time keeping only the fields a parser looks at
//! ([`read_items`]), problems are bounded ([`Problems`]), and a file holds at most
//! [`MAX_ENTRIES`] entries.

pub mod handlers;
pub mod multipart;
pub mod store;
pub mod tempo;
pub mod toggl;
pub mod toggl_csv;

pub use handlers::register_routes;

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::entries::model::{
    check_description, check_duration_hours, check_external_id, check_project, stored_duration,
};

/// Most entries one import may hold. A 10 MiB export of real entries holds far fewer (they
/// take 150 to 500 bytes each); the bound keeps a file of minimal rows from costing more
/// memory than the contract allows.
pub const MAX_ENTRIES: usize = 100_000;

/// The largest integer every JSON implementation keeps exactly (2^53 - 1): the bound of
/// integer ids, whether written `45409` or `45409.0`.
pub const MAX_JSON_INTEGER: u64 = (1 << 53) - 1;

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

pub use crate::error::{Problem, Problems};

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

/// Each listed problem's item index and field, for the JSON parsers' tests.
#[cfg(test)]
pub(crate) fn fields_by_index(problems: &Problems) -> Vec<(Option<usize>, Option<&str>)> {
    problems
        .listed()
        .iter()
        .map(|p| (p.index, p.field.as_deref()))
        .collect()
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
    problems: &mut Problems,
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

/// Hours from seconds, as stored (`-0.0` becomes `0.0`).
pub(crate) fn hours(seconds: f64) -> f64 {
    stored_duration(seconds / 3600.0)
}

/// A JSON number that is a whole number from 0 to [`MAX_JSON_INTEGER`], however written
/// (`45409`, `45409.0`, `4.5409e4`): JSON Schema's `integer`.
pub(crate) fn whole_number(number: &Number) -> Option<u64> {
    let whole = match number.as_u64() {
        Some(n) => n,
        None => {
            let f = number.as_f64()?;
            if f.fract() != 0.0 || !(0.0..=MAX_JSON_INTEGER as f64).contains(&f) {
                return None;
            }
            f as u64
        }
    };
    (whole <= MAX_JSON_INTEGER).then_some(whole)
}

/// What an item's id must be in the JSON formats.
pub(crate) const ID_RULE: &str =
    "must be an integer from 0 to 9007199254740991 (2^53 - 1) or a string";

/// The id member `field` of a JSON item: a whole number (see [`whole_number`]) or a valid
/// id string. A missing or invalid id is reported and read as empty.
pub(crate) fn read_id(
    item: &Map<String, Value>,
    field: &str,
    report: &mut impl FnMut(&str, &str),
) -> String {
    match item.get(field) {
        Some(Value::Number(n)) => match whole_number(n) {
            Some(id) => id.to_string(),
            None => {
                report(field, ID_RULE);
                String::new()
            }
        },
        Some(Value::String(s)) => match check_external_id(s) {
            Ok(()) => s.clone(),
            Err(m) => {
                report(field, &m);
                String::new()
            }
        },
        None | Some(Value::Null) => {
            report(field, "is required");
            String::new()
        }
        Some(_) => {
            report(field, ID_RULE);
            String::new()
        }
    }
}

/// An optional string member `field` of a JSON item: `None` when absent or null. Any other
/// value is reported and read as empty.
pub(crate) fn read_optional_string(
    item: &Map<String, Value>,
    field: &str,
    report: &mut impl FnMut(&str, &str),
) -> Option<String> {
    match item.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            report(field, "must be a string or null");
            Some(String::new())
        }
    }
}

/// Collects the records of an import, refusing more than [`MAX_ENTRIES`].
pub(crate) struct Records {
    items: Vec<(Location, ImportRecord)>,
    over_limit: bool,
}

impl Records {
    pub(crate) fn new() -> Self {
        Records {
            items: Vec::new(),
            over_limit: false,
        }
    }

    /// Whether another record would be over [`MAX_ENTRIES`].
    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= MAX_ENTRIES
    }

    pub(crate) fn push(&mut self, at: Location, record: ImportRecord, problems: &mut Problems) {
        if self.items.len() < MAX_ENTRIES {
            self.items.push((at, record));
        } else if !self.over_limit {
            self.over_limit = true;
            problems.push(problem(
                at,
                None,
                format!(
                    "the file holds more than {MAX_ENTRIES} entries; split it into smaller files"
                ),
            ));
        }
    }

    /// The records in file order.
    pub(crate) fn into_records(self) -> Vec<ImportRecord> {
        self.items.into_iter().map(|(_, record)| record).collect()
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
    ///
    /// Sorting (stable: the first in the file stays first among equal ids) puts
    /// repeats side by side without a second copy of every id.
    pub(crate) fn dedupe(mut self, id_field: &str, problems: &mut Problems) -> Vec<ImportRecord> {
        self.items
            .sort_by(|(_, a), (_, b)| a.external_id.cmp(&b.external_id));
        self.items.dedup_by(|(location, later), (first, kept)| {
            if later.external_id != kept.external_id {
                return false;
            }
            if later != kept {
                let earlier = match first {
                    Location::Index(i) => format!("item {i}"),
                    Location::Line(l) => format!("line {l}"),
                    Location::Document => "the document".to_owned(),
                };
                problems.push(problem(
                    *location,
                    Some(id_field),
                    format!(
                        "id {} also appears at {earlier} with different content",
                        later.external_id
                    ),
                ));
            }
            true
        });
        self.into_records()
    }
}

/// Which members of a JSON object a parser reads; a member's own `Shape` says which
/// of its members to keep when it is an object.
pub(crate) struct Shape(pub &'static [(&'static str, Shape)]);

/// A member read as a scalar: an array or object in its place is kept empty.
pub(crate) const SCALAR: Shape = Shape(&[]);

/// How a JSON import document turned out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Document {
    /// The items were read.
    Items,
    /// An object without an array in the expected member.
    NoItems,
    /// Neither an array nor an object.
    Other,
}

/// Reads the items of a JSON array (the document, or its member `wrapper` when the
/// document is an object) one at a time, keeping of each only the members named in
/// `shape`: a 10 MiB array of tiny objects is never built as a whole. The document must
/// have passed [`crate::http::check_json`].
pub(crate) fn read_items(
    bytes: &[u8],
    wrapper: Option<&'static str>,
    shape: &'static Shape,
    on_item: &mut dyn FnMut(usize, Value),
) -> Result<Document, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let document = DocumentSeed {
        wrapper,
        items: ItemsSeed { shape, on_item },
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(document)
}

struct DocumentSeed<'a> {
    wrapper: Option<&'static str>,
    items: ItemsSeed<'a>,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = Document;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Document, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// The scalar `visit_*` methods of a visitor of [`Document`]s: a scalar is neither shape the
/// parsers look for.
macro_rules! scalars_are_other_documents {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Document, E> {
            Ok(Document::Other)
        }

        fn visit_i64<E>(self, _: i64) -> Result<Document, E> {
            Ok(Document::Other)
        }

        fn visit_u64<E>(self, _: u64) -> Result<Document, E> {
            Ok(Document::Other)
        }

        fn visit_f64<E>(self, _: f64) -> Result<Document, E> {
            Ok(Document::Other)
        }

        fn visit_str<E>(self, _: &str) -> Result<Document, E> {
            Ok(Document::Other)
        }

        fn visit_unit<E>(self) -> Result<Document, E> {
            Ok(Document::Other)
        }
    };
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array or object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Document, A::Error> {
        self.items.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let mut found = Document::NoItems;
        while let Some(key) = map.next_key::<KeyName>()? {
            if Some(key.0.as_str()) == self.wrapper {
                found = map.next_value_seed(ItemsSeed {
                    shape: self.items.shape,
                    on_item: &mut *self.items.on_item,
                })?;
                if found != Document::Items {
                    found = Document::NoItems;
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    scalars_are_other_documents!();
}

/// An object key, owned (keys are short; the document's values are what is large).
struct KeyName(String);

impl<'de> serde::Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(KeyName)
    }
}

/// The array of items: each is handed to `on_item` and dropped.
struct ItemsSeed<'a> {
    shape: &'static Shape,
    on_item: &'a mut dyn FnMut(usize, Value),
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Document;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Document, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Document, A::Error> {
        let mut index = 0;
        while let Some(item) = seq.next_element_seed(Kept(self.shape))? {
            (self.on_item)(index, item);
            index += 1;
        }
        Ok(Document::Items)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Document::Other)
    }

    scalars_are_other_documents!();
}

/// One value, reduced to what its [`Shape`] names.
struct Kept(&'static Shape);

impl<'de> DeserializeSeed<'de> for Kept {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Kept {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Array(Vec::new()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = Map::new();
        while let Some(KeyName(key)) = map.next_key()? {
            match self.0 .0.iter().find(|(name, _)| *name == key) {
                Some((_, shape)) => {
                    let value = map.next_value_seed(Kept(shape))?;
                    kept.insert(key, value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(kept))
    }
}

/// The problem for a JSON document that could not be read (it passed the syntax check, so
/// this is not expected).
pub(crate) fn unreadable(err: serde_json::Error) -> Problem {
    problem(
        Location::Document,
        None,
        format!("the document could not be read: {err}"),
    )
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
        let mut problems = Problems::new();
        let mut records = Records::new();
        for (i, (id, description)) in [
            ("1", "a"),
            ("2", "b"),
            ("1", "a"),
            ("2", "changed"),
            ("2", "b"),
        ]
        .into_iter()
        .enumerate()
        {
            records.push(Location::Index(i), record(id, description), &mut problems);
        }
        let kept = records.dedupe("id", &mut problems);
        assert_eq!(kept, vec![record("1", "a"), record("2", "b")]);
        let problems = problems.listed();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].index, Some(3));
        assert_eq!(problems[0].field.as_deref(), Some("id"));
        assert!(problems[0].message.contains("item 1"), "{:?}", problems[0]);
    }

    #[test]
    fn more_than_max_entries_is_one_problem() {
        let mut problems = Problems::new();
        let mut records = Records::new();
        for i in 0..MAX_ENTRIES + 3 {
            records.push(
                Location::Line(i as u64 + 2),
                record(&i.to_string(), ""),
                &mut problems,
            );
        }
        assert_eq!(problems.total(), 1);
        assert_eq!(problems.listed()[0].line, Some(MAX_ENTRIES + 2));
        assert_eq!(records.into_records().len(), MAX_ENTRIES);
    }

    #[test]
    fn whole_numbers_however_written() {
        let number = |text: &str| serde_json::from_str::<Number>(text).unwrap();
        assert_eq!(whole_number(&number("45409")), Some(45409));
        assert_eq!(whole_number(&number("45409.0")), Some(45409));
        assert_eq!(whole_number(&number("4.5409e4")), Some(45409));
        assert_eq!(
            whole_number(&number("9007199254740991")),
            Some(MAX_JSON_INTEGER)
        );
        for bad in [
            "9007199254740992",
            "1e300",
            "-1",
            "-0.5",
            "0.5",
            "18446744073709551615",
        ] {
            assert_eq!(whole_number(&number(bad)), None, "{bad}");
        }
        assert_eq!(whole_number(&number("-0.0")), Some(0));
    }

    #[test]
    fn items_keep_only_the_named_members() {
        static SHAPE: Shape = Shape(&[("a", SCALAR), ("o", Shape(&[("k", SCALAR)]))]);
        let mut items = Vec::new();
        let document = read_items(
            br#"[{"a": [1, 2], "b": "dropped", "o": {"k": "x", "z": {"deep": [1]}}}, 7, {"a": {"n": 1}}]"#,
            None,
            &SHAPE,
            &mut |index, item| items.push((index, item)),
        )
        .unwrap();
        assert_eq!(document, Document::Items);
        assert_eq!(
            items,
            [
                (0, serde_json::json!({"a": [], "o": {"k": "x"}})),
                (1, serde_json::json!(7)),
                (2, serde_json::json!({"a": {}}))
            ]
        );
        let mut count = 0;
        let mut counter = |_: usize, _: Value| count += 1;
        assert_eq!(
            read_items(
                br#"{"meta": [1], "results": [{}, {}]}"#,
                Some("results"),
                &SHAPE,
                &mut counter
            )
            .unwrap(),
            Document::Items
        );
        assert_eq!(
            read_items(br#"{"results": {}}"#, Some("results"), &SHAPE, &mut counter).unwrap(),
            Document::NoItems
        );
        assert_eq!(
            read_items(br#"{"data": []}"#, None, &SHAPE, &mut counter).unwrap(),
            Document::NoItems
        );
        assert_eq!(
            read_items(b"\"x\"", None, &SHAPE, &mut counter).unwrap(),
            Document::Other
        );
        assert_eq!(count, 2);
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
