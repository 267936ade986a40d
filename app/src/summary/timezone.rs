//! IANA time-zone names as the database knows them.
//!
//! PostgreSQL's `AT TIME ZONE` also accepts POSIX strings and abbreviations
//! ("UTC+3", "XYZ5") with surprising meanings; the API takes only names from
//! `pg_timezone_names`. Listing them costs tens of milliseconds, so the list is
//! read once per process.

use std::collections::HashMap;

use tokio::sync::OnceCell;

use crate::db::{DbError, Queries};
use crate::error::{ApiError, ApiResult};

/// Lower-cased name -> the database's spelling.
static NAMES: OnceCell<HashMap<String, String>> = OnceCell::const_new();

/// The zone's canonical name, or a 400 naming `parameter`.
pub async fn resolve(db: &impl Queries, parameter: &str, name: &str) -> ApiResult<String> {
    let names = NAMES
        .get_or_try_init(|| async {
            let rows = db.query("SELECT name FROM pg_timezone_names", &[]).await?;
            Ok::<_, DbError>(
                rows.iter()
                    .map(|row| {
                        let name: String = row.get(0);
                        (name.to_lowercase(), name)
                    })
                    .collect::<HashMap<_, _>>(),
            )
        })
        .await?;
    names.get(&name.to_lowercase()).cloned().ok_or_else(|| {
        ApiError::invalid_parameter(
            parameter,
            format!("{name:?} is not a known IANA time zone (e.g. Europe/Berlin, UTC)"),
        )
    })
}
