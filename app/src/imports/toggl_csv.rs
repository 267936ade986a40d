//! Toggl Track's detailed-report CSV export.
//!
//! Columns (by header name, in any order, case-insensitive): User, Email,
//! Client, Project, Task, Description, Billable, Start date, Start time,
//! End date, End time, Duration (`HH:MM:SS`, or decimal hours), Tags, Amount ... Only Start date,
//! Start time and Duration (or End date and End time) are required. Times are
//! the exporting user's wall-clock times; the import's `tz` places them.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{Date, PrimitiveDateTime, Time};

use super::{
    check_common, hours, problem, ImportRecord, Location, Parsed, Problem, Problems, Records,
    StartTime,
};

pub const SOURCE: &str = "toggl-csv";

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Column positions found in the header row.
struct Columns {
    user: Option<usize>,
    email: Option<usize>,
    project: Option<usize>,
    description: Option<usize>,
    start_date: usize,
    start_time: usize,
    end_date: Option<usize>,
    end_time: Option<usize>,
    duration: Option<usize>,
}

impl Columns {
    fn find(header: &csv::StringRecord) -> Result<Columns, Problem> {
        let names: HashMap<String, usize> = header
            .iter()
            .enumerate()
            .map(|(i, name)| (name.trim().to_ascii_lowercase(), i))
            .collect();
        let col = |name: &str| names.get(name).copied();
        let mut missing = Vec::new();
        let mut required = |name: &'static str| {
            let found = col(&name.to_ascii_lowercase());
            if found.is_none() {
                missing.push(name);
            }
            found.unwrap_or(0)
        };
        let start_date = required("Start date");
        let start_time = required("Start time");
        let columns = Columns {
            user: col("user").or_else(|| col("member")),
            email: col("email"),
            project: col("project"),
            description: col("description"),
            start_date,
            start_time,
            end_date: col("end date"),
            end_time: col("end time"),
            duration: col("duration"),
        };
        if columns.duration.is_none() && (columns.end_date.is_none() || columns.end_time.is_none())
        {
            missing.push("Duration (or End date and End time)");
        }
        if missing.is_empty() {
            Ok(columns)
        } else {
            Err(problem(
                Location::Line(1),
                None,
                format!(
                    "the header row lacks the column(s): {} (is this a Toggl detailed-report CSV?)",
                    missing.join(", ")
                ),
            ))
        }
    }
}

/// Parses the CSV bytes of a Toggl detailed report.
///
/// The report carries no ids, so each row's external id is the SHA-256 of
/// what identifies the entry (user, email, start and end), followed by the
/// row's occurrence among rows with that identity: re-importing the same file
/// yields the same ids, an edited description or project updates the entry,
/// and two identical rows (two entries Toggl listed alike) stay two entries.
pub fn parse(bytes: &[u8]) -> Result<Parsed, Problems> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let header = match reader.headers() {
        Ok(header) if header.iter().any(|h| !h.trim().is_empty()) => header.clone(),
        Ok(_) => {
            return Err(Problems::from_iter([problem(
                Location::Line(1),
                None,
                "the file is empty; expected a header row",
            )]))
        }
        Err(e) => return Err(Problems::from_iter([csv_problem(&e, 1)])),
    };
    let columns = Columns::find(&header).map_err(|p| Problems::from_iter([p]))?;

    let mut problems = Problems::new();
    let mut records = Records::new();
    let mut occurrences: HashMap<[u8; 32], u32> = HashMap::new();
    let mut lines = LineCounter::new(bytes);
    let mut record = csv::StringRecord::new();
    loop {
        let fallback = reader.position().byte();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = lines.line_at(record.position().map_or(fallback, |p| p.byte()));
                if record.len() != header.len() {
                    problems.push(problem(
                        Location::Line(line),
                        None,
                        format!(
                            "has {} fields, the header has {}",
                            record.len(),
                            header.len()
                        ),
                    ));
                    continue;
                }
                if let Some((identity, mut parsed)) =
                    parse_row(line, &record, &columns, &mut problems)
                {
                    // Past the limit nothing more is kept (push only reports it).
                    if !records.is_full() {
                        let n = occurrences.entry(identity).or_insert(0);
                        *n += 1;
                        parsed.external_id = format!("{}-{n}", hex(&identity));
                    }
                    records.push(Location::Line(line), parsed, &mut problems);
                }
            }
            Err(e) => {
                let byte = e.position().map_or(fallback, |p| p.byte());
                problems.push(csv_problem(&e, lines.line_at(byte)));
                // An I/O-level error leaves the reader where it was: stop.
                if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
    }
    problems.or_ok(Parsed {
        records: records.into_records(),
        skipped: 0,
    })
}

/// Where a NUL character is in an uploaded file.
#[derive(Debug, PartialEq, Eq)]
pub struct NulCell {
    pub line: u64,
    /// The column's name in the header row (`header row` for the header itself).
    pub column: String,
}

/// The first cell holding a NUL character, if any. Such a file is refused as a bad request
/// naming the column, as a NUL in a JSON import is: PostgreSQL text cannot hold one.
pub fn find_nul(bytes: &[u8]) -> Option<NulCell> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let first = bytes.iter().position(|&b| b == 0)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut lines = LineCounter::new(bytes);
    let mut header: Option<csv::ByteRecord> = None;
    let mut record = csv::ByteRecord::new();
    while let Ok(true) = reader.read_byte_record(&mut record) {
        let start = record.position().map_or(0, |p| p.byte());
        if let Some(i) = record.iter().position(|field| field.contains(&0)) {
            let column = match &header {
                None => "header row".to_owned(),
                Some(names) => names.get(i).map_or_else(
                    || format!("column {}", i + 1),
                    |name| String::from_utf8_lossy(name).trim().to_owned(),
                ),
            };
            return Some(NulCell {
                line: lines.line_at(start),
                column,
            });
        }
        if header.is_none() {
            header = Some(record.clone());
        }
    }
    // Not inside any field the reader returned (it stopped early): name the file.
    Some(NulCell {
        line: lines.line_at(first as u64),
        column: "file".to_owned(),
    })
}

fn csv_problem(e: &csv::Error, line: u64) -> Problem {
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8 (export the report as UTF-8)".to_owned(),
        _ => "could not be read as CSV".to_owned(),
    };
    problem(Location::Line(line), None, message)
}

/// One-based line numbers from byte offsets, counted incrementally.
///
/// The csv crate's own line count is one short after CRLF line ends (the LF is
/// counted as part of the next record), and Toggl exports use CRLF.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    /// The line of the first character at or after `offset` that is not a line end.
    fn line_at(&mut self, offset: u64) -> u64 {
        let mut target = (offset as usize).min(self.bytes.len());
        while target < self.bytes.len() && matches!(self.bytes[target], b'\r' | b'\n') {
            target += 1;
        }
        if target >= self.offset {
            let newlines = self.bytes[self.offset..target]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.line += newlines as u64;
            self.offset = target;
        }
        self.line
    }
}

fn parse_row(
    line: u64,
    row: &csv::StringRecord,
    columns: &Columns,
    problems: &mut Problems,
) -> Option<([u8; 32], ImportRecord)> {
    let at = Location::Line(line);
    let before = problems.total();
    let field = |i: Option<usize>| i.and_then(|i| row.get(i)).unwrap_or("").trim();

    let mut report = |name: &str, message: &str| {
        problems.push(problem(at, Some(name), message));
    };
    let start_date = parse_date(field(Some(columns.start_date))).or_else(|| {
        report(
            "Start date",
            "must be a date YYYY-MM-DD (years 1900 to 9998)",
        );
        None
    });
    let start_time = parse_time(field(Some(columns.start_time))).or_else(|| {
        report("Start time", "must be a time HH:MM:SS");
        None
    });
    let start = start_date
        .zip(start_time)
        .map(|(d, t)| PrimitiveDateTime::new(d, t));

    let end = match (columns.end_date, columns.end_time) {
        (Some(d), Some(t)) if !field(Some(d)).is_empty() || !field(Some(t)).is_empty() => {
            let end_date = parse_date(field(Some(d))).or_else(|| {
                report("End date", "must be a date YYYY-MM-DD (years 1900 to 9998)");
                None
            });
            let end_time = parse_time(field(Some(t))).or_else(|| {
                report("End time", "must be a time HH:MM:SS");
                None
            });
            end_date
                .zip(end_time)
                .map(|(d, t)| PrimitiveDateTime::new(d, t))
        }
        _ => None,
    };

    let seconds = match columns.duration.map(|i| field(Some(i))) {
        Some(text) if !text.is_empty() => parse_duration(text).or_else(|| {
            report("Duration", "must be a duration HH:MM:SS or decimal hours");
            None
        }),
        _ => match (start, end) {
            // Without a Duration value the wall-clock span is the best there is.
            (Some(start), Some(end)) if end >= start => Some((end - start).whole_seconds() as f64),
            (Some(_), Some(_)) => {
                report("End time", "is before the start");
                None
            }
            _ => {
                report("Duration", "is required (or End date and End time)");
                None
            }
        },
    };

    let project = field(columns.project).to_owned();
    let description = field(columns.description).to_owned();
    let duration = hours(seconds.unwrap_or(0.0));
    check_common(at, "Duration", duration, &project, &description, problems);
    if problems.total() != before {
        return None;
    }
    let start = start?;

    // Identity: who and when, normalized; the unit separator keeps fields apart.
    let mut hasher = Sha256::new();
    for part in [
        field(columns.user).to_owned(),
        field(columns.email).to_lowercase(),
        start.to_string(),
        end.map(|e| e.to_string()).unwrap_or_default(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0x1f]);
    }
    Some((
        hasher.finalize().into(),
        ImportRecord {
            external_id: String::new(),
            start: StartTime::Local(start),
            duration,
            project,
            description,
        },
    ))
}

fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]"))
        .ok()
        // 9998 at most: a wall-clock time in 9999 could pass year 9999 in UTC.
        .filter(|d| (1900..=9998).contains(&d.year()))
}

fn parse_time(s: &str) -> Option<Time> {
    Time::parse(
        s,
        format_description!("[hour padding:none]:[minute]:[second]"),
    )
    .or_else(|_| Time::parse(s, format_description!("[hour padding:none]:[minute]")))
    .ok()
}

/// `HH:MM:SS` (hours may exceed 24), or decimal hours (`1.25`) as Toggl writes
/// them with its "decimal" duration format. Returns seconds.
fn parse_duration(s: &str) -> Option<f64> {
    if !s.contains(':') {
        let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || whole.len() > 6
            || fraction.len() > 9
            || !digits(whole)
            || !digits(fraction)
        {
            return None;
        }
        return s.parse::<f64>().ok().map(|hours| hours * 3600.0);
    }
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || m.len() != 2 || sec.len() != 2 || h.is_empty() || h.len() > 6 {
        return None;
    }
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if !(digits(h) && digits(m) && digits(sec)) {
        return None;
    }
    let (h, m, sec): (u64, u64, u64) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
    if m >= 60 || sec >= 60 {
        return None;
    }
    Some((h * 3600 + m * 60 + sec) as f64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const HEADER: &str = "User,Email,Client,Project,Task,Description,Billable,Start date,Start time,End date,End time,Duration,Tags,Amount (EUR)\n";

    #[test]
    fn reads_bom_quotes_and_long_durations() {
        let csv = format!(
            "\u{feff}{HEADER}\
             Zoë,zoe@example.com,Äcme,\"Web, redesign\",,\"Said \"\"hi\"\"\nthen left\",Yes,2024-03-10,23:30:00,2024-03-11,00:45:00,01:15:00,,\n\
             Zoë,zoe@example.com,,,,,No,2024-03-12,9:00:00,2024-03-13,11:00:00,26:00:00,,\n"
        );
        let parsed = parse(csv.as_bytes()).unwrap();
        let r = &parsed.records;
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].project, "Web, redesign");
        assert_eq!(r[0].description, "Said \"hi\"\nthen left");
        assert_eq!(r[0].duration, 1.25);
        assert_eq!(r[0].start, StartTime::Local(datetime!(2024-03-10 23:30)));
        assert_eq!(r[1].project, "");
        assert_eq!(r[1].duration, 26.0);
        assert_ne!(r[0].external_id, r[1].external_id);
        assert!(r[0].external_id.ends_with("-1"));
        // Same bytes, same ids: what makes a re-import idempotent.
        assert_eq!(parse(csv.as_bytes()).unwrap(), parsed);
    }

    #[test]
    fn identical_rows_are_distinct_entries_and_edits_keep_the_id() {
        let row = "Ann,ann@example.com,,P,,Standup,No,2024-03-10,09:00:00,2024-03-10,09:15:00,00:15:00,,\n";
        let parsed = parse(format!("{HEADER}{row}{row}").as_bytes()).unwrap();
        let ids: Vec<&str> = parsed
            .records
            .iter()
            .map(|r| r.external_id.as_str())
            .collect();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].trim_end_matches("-1"), ids[1].trim_end_matches("-2"));
        let edited = row.replace("Standup", "Stand-up meeting");
        let again = parse(format!("{HEADER}{edited}").as_bytes()).unwrap();
        assert_eq!(again.records[0].external_id, ids[0]);
    }

    #[test]
    fn lists_every_problem_by_line() {
        let csv = format!(
            "{HEADER}\
             Ann,ann@example.com,,P,,ok,No,2024-03-10,09:00:00,2024-03-10,09:15:00,00:15:00,,\n\
             Ann,ann@example.com,,P,,\"multi\nline\",No,03/10/2024,09:00,2024-03-10,09:15:00,15 min,,\n\
             too,few,fields\n\
             Ann,ann@example.com,,P,,x,No,2024-03-10,9:61:00,2024-03-10,09:15:00,00:75:00,,\n"
        );
        let problems = parse(csv.as_bytes()).unwrap_err();
        let listed: Vec<(Option<usize>, Option<&str>)> = problems
            .listed()
            .iter()
            .map(|p| (p.line, p.field.as_deref()))
            .collect();
        assert_eq!(
            listed,
            [
                (Some(3), Some("Start date")),
                (Some(3), Some("Duration")),
                (Some(5), None),
                (Some(6), Some("Start time")),
                (Some(6), Some("Duration")),
            ]
        );
    }

    #[test]
    fn refuses_files_that_are_not_a_detailed_report() {
        let problems = parse(b"").unwrap_err();
        assert_eq!(problems.listed()[0].line, Some(1));
        let problems = parse(b"name,hours\nx,1\n").unwrap_err();
        let problems = problems.listed();
        assert!(problems[0].message.contains("Start date"), "{problems:?}");
        let problems =
            parse(b"Start date,Start time,Duration\n2024-03-10,09:00:00,01:00:00\n\xff\xfe,x,y\n")
                .unwrap_err();
        assert_eq!(problems.listed()[0].line, Some(3));
    }

    #[test]
    fn lines_are_counted_with_crlf_and_lf_alike() {
        for end in ["\n", "\r\n"] {
            let csv = [
                "Start date,Start time,Duration",
                "2024-03-10,09:00:00,bad",
                "2024-03-10,09:00:00,01:00:00",
                "2024-03-10,bad,01:00:00",
            ]
            .join(end);
            let lines: Vec<Option<usize>> = parse(csv.as_bytes())
                .unwrap_err()
                .listed()
                .iter()
                .map(|p| p.line)
                .collect();
            assert_eq!(lines, [Some(2), Some(4)], "{end:?}");
        }
    }

    #[test]
    fn falls_back_to_end_minus_start_without_a_duration_column() {
        let parsed = parse(
            b"Start date,Start time,End date,End time\n2024-03-10,23:00:00,2024-03-11,01:30:00\n",
        )
        .unwrap();
        assert_eq!(parsed.records[0].duration, 2.5);
        let problems = parse(
            b"Start date,Start time,End date,End time\n2024-03-10,23:00:00,2024-03-10,01:30:00\n",
        )
        .unwrap_err();
        assert_eq!(problems.listed()[0].field.as_deref(), Some("End time"));
    }

    #[test]
    fn finds_the_cell_with_a_nul_character() {
        assert_eq!(find_nul(HEADER.as_bytes()), None);
        let csv = format!(
            "{HEADER}Ann,ann@example.com,,P,,ok,No,2024-03-10,09:00:00,2024-03-10,09:15:00,00:15:00,,\r\n\
             Ann,ann@example.com,,P,,\"two\r\nlines\",No,2024-03-10,09:00:00,2024-03-10,09:15:00,00:15:00,,\r\n\
             Ann,ann@example.com,,P,,x\0y,No,2024-03-10,09:00:00,2024-03-10,09:15:00,00:15:00,,\r\n"
        );
        assert_eq!(
            find_nul(csv.as_bytes()),
            Some(NulCell {
                line: 5,
                column: "Description".to_owned()
            })
        );
        assert_eq!(
            find_nul(b"Start date,Start\0time\n").map(|cell| cell.column),
            Some("header row".to_owned())
        );
    }

    #[test]
    fn durations_are_strict() {
        assert_eq!(parse_duration("00:00:00"), Some(0.0));
        assert_eq!(parse_duration("123:04:05"), Some(443_045.0));
        assert_eq!(parse_duration("1.25"), Some(4_500.0));
        assert_eq!(parse_duration("2"), Some(7_200.0));
        for bad in [
            "",
            "1:2:3",
            "01:00",
            "-1:00:00",
            "01:60:00",
            "a1:00:00",
            "01:00:00:00",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
