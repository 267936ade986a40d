//! Writes parsed records in one transaction, idempotently.

use serde::Serialize;
use time::{OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

use super::{ImportRecord, StartTime};
use crate::db::{param, Db, DbError, Queries};

/// Rows per statement: large enough to amortize round trips, small enough to
/// keep each statement's arrays modest.
const BATCH_ROWS: usize = 5_000;

/// What an import did, as the API answers it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// Inserts new entries, updates changed ones and leaves identical ones untouched.
///
/// `ON CONFLICT ... DO UPDATE ... WHERE (row differs)` skips identical rows, so
/// a re-import writes nothing; `xmax = 0` tells a fresh insert from an update.
/// Local start times are placed with `tz` (already validated) by PostgreSQL.
const UPSERT: &str = "
WITH input AS (
    SELECT u.external_id,
           coalesce(u.utc_date, u.local_date AT TIME ZONE $3) AS date,
           u.duration, u.project, u.description
    FROM unnest($4::text[], $5::timestamptz[], $6::timestamp[], $7::float8[], $8::text[], $9::text[])
         AS u(external_id, utc_date, local_date, duration, project, description)
), written AS (
    INSERT INTO time_entries AS e (user_id, source, external_id, date, duration, project, description)
    SELECT $1, $2, external_id, date, duration, project, description FROM input
    ON CONFLICT (user_id, source, external_id) DO UPDATE
        SET date = EXCLUDED.date, duration = EXCLUDED.duration, project = EXCLUDED.project,
            description = EXCLUDED.description, updated_at = now()
        WHERE (e.date, e.duration, e.project, e.description)
              IS DISTINCT FROM (EXCLUDED.date, EXCLUDED.duration, EXCLUDED.project, EXCLUDED.description)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written";

/// SQLSTATEs after which the whole import is simply tried again.
fn is_retryable(e: &DbError) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// Stores `records` for `user_id` under `source`, all or nothing, within the import deadline
/// (`DB_IMPORT_TIMEOUT`, see [`Db::use_bulk_budget`]) for all attempts together.
pub async fn import(
    client: &mut Db,
    user_id: Uuid,
    source: &str,
    tz: &str,
    mut records: Vec<ImportRecord>,
) -> Result<ImportCounts, DbError> {
    // One lock order for every import: two imports touching the same rows
    // then wait for each other instead of deadlocking.
    records.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    client.use_bulk_budget();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match import_once(client, user_id, source, tz, &records).await {
            Err(e) if attempt < 3 && is_retryable(&e) => continue,
            other => return other,
        }
    }
}

async fn import_once(
    client: &mut Db,
    user_id: Uuid,
    source: &str,
    tz: &str,
    records: &[ImportRecord],
) -> Result<ImportCounts, DbError> {
    let transaction = client.bulk_transaction().await?;
    let mut counts = ImportCounts::default();
    for batch in records.chunks(BATCH_ROWS) {
        let mut external_ids = Vec::with_capacity(batch.len());
        let mut utc_dates: Vec<Option<OffsetDateTime>> = Vec::with_capacity(batch.len());
        let mut local_dates: Vec<Option<PrimitiveDateTime>> = Vec::with_capacity(batch.len());
        let mut durations = Vec::with_capacity(batch.len());
        let mut projects = Vec::with_capacity(batch.len());
        let mut descriptions = Vec::with_capacity(batch.len());
        for record in batch {
            external_ids.push(record.external_id.as_str());
            match record.start {
                StartTime::Utc(t) => {
                    utc_dates.push(Some(t));
                    local_dates.push(None);
                }
                StartTime::Local(t) => {
                    utc_dates.push(None);
                    local_dates.push(Some(t));
                }
            }
            durations.push(record.duration);
            projects.push(record.project.as_str());
            descriptions.push(record.description.as_str());
        }
        let row = transaction
            .query_one(
                UPSERT,
                &[
                    param(&user_id),
                    param(&source),
                    param(&tz),
                    param(&external_ids),
                    param(&utc_dates),
                    param(&local_dates),
                    param(&durations),
                    param(&projects),
                    param(&descriptions),
                ],
            )
            .await?;
        let inserted: i64 = row.get(0);
        let updated: i64 = row.get(1);
        counts.inserted += inserted as u64;
        counts.updated += updated as u64;
        counts.unchanged += batch.len() as u64 - inserted as u64 - updated as u64;
    }
    transaction.commit().await?;
    Ok(counts)
}
