//! `GET /api/summary`: hours and entry counts per day, project or source,
//! computed by PostgreSQL (days cut in the caller's time zone, DST included).

pub mod handlers;
pub mod timezone;

pub use handlers::register_routes;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{param, DbError, Param, Queries};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;

const PARAMETERS: [&str; 4] = ["from", "to", "tz", "group_by"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Project,
    Source,
}

impl GroupBy {
    fn parse(text: &str) -> Option<GroupBy> {
        match text {
            "day" => Some(GroupBy::Day),
            "project" => Some(GroupBy::Project),
            "source" => Some(GroupBy::Source),
            _ => None,
        }
    }

    /// What rows are grouped by; for days `$2` is the time zone. Fixed fragments only.
    fn group_sql(self) -> &'static str {
        match self {
            GroupBy::Day => "(date AT TIME ZONE $2)::date",
            GroupBy::Project => "project",
            GroupBy::Source => "source",
        }
    }

    /// The group as the API shows it. Days are formatted once per group, not per row.
    fn key_sql(self) -> &'static str {
        match self {
            GroupBy::Day => "to_char(k, 'YYYY-MM-DD')",
            GroupBy::Project | GroupBy::Source => "k",
        }
    }
}

/// The validated query of a summary request (the zone still unchecked).
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryParams {
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub tz: String,
    pub group_by: GroupBy,
}

impl SummaryParams {
    pub fn parse(query: &Query) -> ApiResult<SummaryParams> {
        query.reject_unknown(&PARAMETERS)?;
        let (from, to) = query.utc_range()?;
        let tz = match query.get("tz")? {
            None => "UTC".to_owned(),
            Some(tz) if tz.is_empty() || tz.len() > 64 => {
                return Err(ApiError::invalid_parameter(
                    "tz",
                    "must be an IANA time zone name (e.g. Europe/Berlin)",
                ))
            }
            Some(tz) => tz.to_owned(),
        };
        let group_by = match query.get("group_by")? {
            None => GroupBy::Day,
            Some(text) => GroupBy::parse(text).ok_or_else(|| {
                ApiError::invalid_parameter("group_by", "must be one of day, project, source")
            })?,
        };
        Ok(SummaryParams {
            from,
            to,
            tz,
            group_by,
        })
    }
}

/// One group of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub key: String,
    pub hours: f64,
    pub entries: i64,
}

/// The aggregate, ordered by key (days chronologically).
pub fn summary_sql(params: &SummaryParams) -> String {
    let mut sql = format!(
        "SELECT {} AS key, hours, entries FROM (
             SELECT {} AS k, sum(duration) AS hours, count(*) AS entries
             FROM time_entries WHERE user_id = $1",
        params.group_by.key_sql(),
        params.group_by.group_sql()
    );
    let mut n = if params.group_by == GroupBy::Day {
        2
    } else {
        1
    };
    if params.from.is_some() {
        n += 1;
        sql.push_str(&format!(" AND date >= ${n}"));
    }
    if params.to.is_some() {
        n += 1;
        sql.push_str(&format!(" AND date < ${n}"));
    }
    sql.push_str(" GROUP BY 1) AS g ORDER BY k");
    sql
}

/// Runs the summary; `tz` must come from [`timezone::resolve`].
pub async fn summarize(
    db: &impl Queries,
    user_id: Uuid,
    params: &SummaryParams,
    tz: &str,
) -> Result<Vec<SummaryRow>, DbError> {
    let sql = summary_sql(params);
    // In the order of `summary_sql`'s placeholders, each with its type.
    let mut args: Vec<Param> = vec![param(&user_id)];
    if params.group_by == GroupBy::Day {
        args.push(param(&tz));
    }
    if let Some(from) = &params.from {
        args.push(param(from));
    }
    if let Some(to) = &params.to {
        args.push(param(to));
    }
    let rows = db.query(&sql, &args).await?;
    rows.iter()
        .map(|row| {
            Ok(SummaryRow {
                key: row.try_get(0)?,
                hours: row.try_get(1)?,
                entries: row.try_get(2)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(DbError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> ApiResult<SummaryParams> {
        SummaryParams::parse(&Query::parse(Some(q)))
    }

    #[test]
    fn defaults_to_days_in_utc() {
        let p = parse("").unwrap();
        assert_eq!((p.tz.as_str(), p.group_by), ("UTC", GroupBy::Day));
        let p = parse("tz=Europe/Berlin&group_by=project&from=2024-01-01T00:00:00Z").unwrap();
        assert_eq!(
            (p.tz.as_str(), p.group_by),
            ("Europe/Berlin", GroupBy::Project)
        );
    }

    #[test]
    fn every_bad_parameter_is_named() {
        for (q, name) in [
            ("group_by=week", "group_by"),
            ("group_by=", "group_by"),
            ("tz=", "tz"),
            ("from=2024", "from"),
            ("to=2024-01-01T00:00:00Z&from=2024-02-01T00:00:00Z", "to"),
            ("tz=UTC&tz=UTC", "tz"),
            ("zone=UTC", "zone"),
            ("from=9999-12-31T23:00:00-01:00", "from"),
        ] {
            let err = parse(q).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST, "{q}");
            assert_eq!(err.field(), Some(name), "{q}");
        }
    }

    #[test]
    fn sql_uses_the_zone_only_for_days() {
        let p = parse("group_by=day&from=2024-01-01T00:00:00Z&to=2025-01-01T00:00:00Z").unwrap();
        let sql = summary_sql(&p);
        assert!(
            sql.contains("AT TIME ZONE $2")
                && sql.contains("date >= $3")
                && sql.contains("date < $4"),
            "{sql}"
        );
        let p = parse("group_by=source&from=2024-01-01T00:00:00Z").unwrap();
        let sql = summary_sql(&p);
        assert!(!sql.contains("$2::") && sql.contains("date >= $2"), "{sql}");
    }
}
