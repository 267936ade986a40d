//! Query-string parsing with errors that name the parameter.

use std::str::FromStr;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::error::{ApiError, ApiResult};

/// The decoded parameters of a query string, in order.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes `a=1&b=x%20y`; `None` is an empty query.
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    /// The query of a request.
    pub fn from_request<B>(req: &http::Request<B>) -> Self {
        Self::parse(req.uri().query())
    }

    /// 400 for any parameter not in `allowed`, so a misspelt filter is not silently ignored,
    /// and for a NUL character in any value (PostgreSQL text cannot hold one).
    pub fn reject_unknown(&self, allowed: &[&str]) -> ApiResult<()> {
        if let Some((name, _)) = self.pairs.iter().find(|(_, value)| value.contains('\0')) {
            return Err(nul_in(name));
        }
        match self
            .pairs
            .iter()
            .find(|(name, _)| !allowed.contains(&name.as_str()))
        {
            Some((name, _)) => Err(ApiError::invalid_parameter(
                name.clone(),
                format!("is not supported (supported: {})", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// The one value of `name`; 400 when it is given more than once.
    pub fn get(&self, name: &str) -> ApiResult<Option<&str>> {
        let mut values = self.pairs.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(ApiError::invalid_parameter(name, "is given more than once"));
        }
        if first.is_some_and(|value| value.contains('\0')) {
            return Err(nul_in(name));
        }
        Ok(first)
    }

    /// Whether `name` is present (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// The value of `name` parsed as `T`; 400 naming the parameter when it does not parse.
    pub fn parse_opt<T>(&self, name: &str) -> ApiResult<Option<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name)? {
            None => Ok(None),
            Some(raw) => raw.parse::<T>().map(Some).map_err(|err| {
                ApiError::invalid_parameter(name, format!("cannot parse {raw:?}: {err}"))
            }),
        }
    }

    /// Like [`Query::parse_opt`], with 400 when the parameter is absent.
    pub fn parse_required<T>(&self, name: &str) -> ApiResult<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.parse_opt(name)?
            .ok_or_else(|| ApiError::invalid_parameter(name, "is required"))
    }

    /// An RFC 3339 timestamp parameter, as UTC.
    ///
    /// The database driver converts to UTC and would panic past year 9999, so such
    /// an instant (e.g. `9999-12-31T23:59:59-23:59`) is refused here.
    pub fn utc_timestamp(&self, name: &str) -> ApiResult<Option<OffsetDateTime>> {
        const START_OF_10000: i64 = 253_402_300_800;
        let Some(raw) = self.get(name)? else {
            return Ok(None);
        };
        let timestamp = OffsetDateTime::parse(raw, &Rfc3339).map_err(|err| {
            ApiError::invalid_parameter(
                name,
                format!("{raw:?} is not an RFC 3339 timestamp: {err}"),
            )
        })?;
        if timestamp.unix_timestamp() >= START_OF_10000 {
            return Err(ApiError::invalid_parameter(
                name,
                "must be before the year 10000 in UTC",
            ));
        }
        Ok(Some(timestamp.to_offset(UtcOffset::UTC)))
    }

    /// The half-open range `from` (inclusive) to `to` (exclusive), either end optional, as
    /// UTC; 400 naming `to` when it is before `from`.
    pub fn utc_range(&self) -> ApiResult<(Option<OffsetDateTime>, Option<OffsetDateTime>)> {
        let from = self.utc_timestamp("from")?;
        let to = self.utc_timestamp("to")?;
        if let (Some(from), Some(to)) = (from, to) {
            if to < from {
                return Err(ApiError::invalid_parameter(
                    "to",
                    "must not be before `from`",
                ));
            }
        }
        Ok((from, to))
    }

    /// An integer parameter within `min..=max`.
    pub fn int_in_range(&self, name: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        match self.parse_opt::<i64>(name)? {
            Some(value) if !(min..=max).contains(&value) => Err(ApiError::invalid_parameter(
                name,
                format!("must be between {min} and {max}"),
            )),
            other => Ok(other),
        }
    }
}

fn nul_in(name: &str) -> ApiError {
    ApiError::invalid_parameter(name, "must not contain NUL characters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_validates() {
        let q = Query::parse(Some("limit=20&project=a%20b&from=2024-01-01T00:00:00Z"));
        assert_eq!(q.get("project").unwrap(), Some("a b"));
        assert_eq!(q.int_in_range("limit", 1, 500).unwrap(), Some(20));
        assert!(q.utc_timestamp("from").unwrap().is_some());
        assert!(q.reject_unknown(&["limit", "project", "from"]).is_ok());
        let err = q.reject_unknown(&["limit"]).unwrap_err();
        assert_eq!(err.field(), Some("project"));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let q = Query::parse(Some("limit=0&from=yesterday&x=1&x=2&n=abc"));
        assert_eq!(
            q.int_in_range("limit", 1, 500).unwrap_err().field(),
            Some("limit")
        );
        assert_eq!(q.utc_timestamp("from").unwrap_err().field(), Some("from"));
        assert!(q.get("x").is_err());
        assert!(q.parse_opt::<i64>("n").is_err());
        assert!(q.parse_required::<i64>("missing").is_err());
    }

    #[test]
    fn a_nul_character_is_refused_naming_the_parameter() {
        let q = Query::parse(Some("limit=5&project=a%00b"));
        let err = q.reject_unknown(&["limit", "project"]).unwrap_err();
        assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
        assert_eq!(err.field(), Some("project"));
        assert!(err.message.contains("NUL"), "{}", err.message);
        assert_eq!(q.get("project").unwrap_err().field(), Some("project"));
        assert_eq!(q.get("limit").unwrap(), Some("5"));
    }
}
