//! `GET /api/entries`: filters, page size and the opaque keyset cursor.

use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{check_date, check_project, check_source};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 500;
const PARAMETERS: [&str; 6] = ["from", "to", "source", "project", "limit", "cursor"];

/// Where the previous page ended: entries strictly after (date, id) follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub date: OffsetDateTime,
    pub id: Uuid,
}

impl Cursor {
    /// 48 hex digits: the date in microseconds (PostgreSQL's precision), then the id.
    pub fn encode(&self) -> String {
        let micros = (self.date.unix_timestamp_nanos() / 1_000) as i64;
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&micros.to_be_bytes());
        bytes[8..].copy_from_slice(self.id.as_bytes());
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        if text.len() != 48 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 24];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        let micros = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        let date = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()?;
        // Only dates an entry can have: anything else was not issued by this API.
        check_date(date).ok()?;
        let id = Uuid::from_bytes(bytes[8..].try_into().ok()?);
        Some(Cursor { date, id })
    }
}

/// The validated query of a list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub source: Option<String>,
    pub project: Option<String>,
    pub limit: i64,
    pub cursor: Option<Cursor>,
}

impl ListParams {
    /// Every bad parameter is a 400 naming it.
    pub fn parse(query: &Query) -> ApiResult<ListParams> {
        query.reject_unknown(&PARAMETERS)?;
        let (from, to) = query.utc_range()?;
        let source = query.get("source")?.map(str::to_owned);
        if let Some(source) = &source {
            check_source(source).map_err(|m| ApiError::invalid_parameter("source", m))?;
        }
        let project = query.get("project")?.map(str::to_owned);
        if let Some(project) = &project {
            check_project(project).map_err(|m| ApiError::invalid_parameter("project", m))?;
        }
        let limit = query
            .int_in_range("limit", 1, MAX_LIMIT)?
            .unwrap_or(DEFAULT_LIMIT);
        let cursor = match query.get("cursor")? {
            None => None,
            Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "cursor",
                    "is not a cursor this API returned (use nextCursor as given)",
                )
            })?),
        };
        Ok(ListParams {
            from,
            to,
            source,
            project,
            limit,
            cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn parse(q: &str) -> ApiResult<ListParams> {
        ListParams::parse(&Query::parse(Some(q)))
    }

    #[test]
    fn cursor_round_trips_and_refuses_forgeries() {
        let cursor = Cursor {
            date: datetime!(2024-03-10 09:00:00.123456 UTC),
            id: Uuid::now_v7(),
        };
        let text = cursor.encode();
        assert_eq!(text.len(), 48);
        assert_eq!(Cursor::decode(&text), Some(cursor));
        assert_eq!(Cursor::decode(&text[1..]), None);
        assert_eq!(Cursor::decode(&format!("{}zz", &text[2..])), None);
        assert_eq!(Cursor::decode(""), None);
        // Well-formed, but far outside any stored date (PostgreSQL could not even bind it).
        assert_eq!(
            Cursor::decode("FC60ecB8BB080cE58F7667aBDbA4b490cC4E411aABF22aee"),
            None
        );
    }

    #[test]
    fn defaults_and_values() {
        let p = parse("").unwrap();
        assert_eq!(p.limit, 100);
        assert!(p.from.is_none() && p.cursor.is_none());
        let p = parse("from=2024-01-01T00:00:00Z&to=2024-02-01T00:00:00%2B01:00&source=toggl&project=A%20B&limit=500")
            .unwrap();
        assert_eq!(p.from, Some(datetime!(2024-01-01 0:00 UTC)));
        assert_eq!(p.to, Some(datetime!(2024-02-01 0:00 +1)));
        assert_eq!(p.project.as_deref(), Some("A B"));
        assert_eq!(p.limit, 500);
    }

    #[test]
    fn every_bad_parameter_is_named() {
        for (q, name) in [
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("limit=ten", "limit"),
            ("from=2024-01-01", "from"),
            ("to=yesterday", "to"),
            ("from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z", "to"),
            ("source=Not%20A%20Source", "source"),
            ("project=a%00b", "project"),
            ("cursor=abc", "cursor"),
            ("to=9999-12-31T23:59:59-23:59", "to"),
            ("limit=1&limit=2", "limit"),
            ("page=2", "page"),
        ] {
            let err = parse(q).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST, "{q}");
            assert_eq!(err.field(), Some(name), "{q}");
        }
    }
}
