//! SQL for one user's time entries. Every statement is scoped by `user_id`, so
//! another user's entry is simply not found.

use uuid::Uuid;

use super::list::{Cursor, ListParams};
use super::model::{EntryChanges, NewEntry, TimeEntry};
use crate::db::{param, DbError, Param, Queries};

/// The columns every query returns, in the order [`TimeEntry::from_row`] reads them.
pub const COLUMNS: &str =
    "id, source, external_id, date, duration, project, description, created_at, updated_at";

/// Why a write was refused by the database.
#[derive(Debug)]
pub enum WriteError {
    /// Another entry of the user already has this (source, externalId).
    Duplicate,
    Db(DbError),
}

impl From<DbError> for WriteError {
    fn from(e: DbError) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            WriteError::Duplicate
        } else {
            WriteError::Db(e)
        }
    }
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::from(e).into()
    }
}

pub async fn create(
    db: &impl Queries,
    user_id: Uuid,
    entry: &NewEntry,
) -> Result<TimeEntry, WriteError> {
    let sql = format!(
        "INSERT INTO time_entries (id, user_id, source, external_id, date, duration, project, description)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    );
    let row = db
        .query_one(
            &sql,
            &[
                param(&entry.id),
                param(&user_id),
                param(&entry.source),
                param(&entry.external_id),
                param(&entry.date),
                param(&entry.duration),
                param(&entry.project),
                param(&entry.description),
            ],
        )
        .await?;
    Ok(TimeEntry::from_row(&row)?)
}

pub async fn get(db: &impl Queries, user_id: Uuid, id: Uuid) -> Result<Option<TimeEntry>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM time_entries WHERE id = $1 AND user_id = $2");
    match db.query_opt(&sql, &[param(&id), param(&user_id)]).await? {
        Some(row) => Ok(Some(TimeEntry::from_row(&row)?)),
        None => Ok(None),
    }
}

/// Applies the given fields; `updated_at` moves only when something changed.
pub async fn update(
    db: &impl Queries,
    user_id: Uuid,
    id: Uuid,
    changes: &EntryChanges,
) -> Result<Option<TimeEntry>, WriteError> {
    // In SET, column names are the old values: compare old and new in one pass.
    let sql = format!(
        "UPDATE time_entries SET
             source = coalesce($3, source), external_id = coalesce($4, external_id),
             date = coalesce($5, date), duration = coalesce($6, duration),
             project = coalesce($7, project), description = coalesce($8, description),
             updated_at = CASE
                 WHEN (coalesce($3, source), coalesce($4, external_id), coalesce($5, date),
                       coalesce($6, duration), coalesce($7, project), coalesce($8, description))
                      IS DISTINCT FROM (source, external_id, date, duration, project, description)
                 THEN now() ELSE updated_at END
         WHERE id = $1 AND user_id = $2
         RETURNING {COLUMNS}"
    );
    let row = db
        .query_opt(
            &sql,
            &[
                param(&id),
                param(&user_id),
                param(&changes.source),
                param(&changes.external_id),
                param(&changes.date),
                param(&changes.duration),
                param(&changes.project),
                param(&changes.description),
            ],
        )
        .await?;
    match row {
        Some(row) => Ok(Some(TimeEntry::from_row(&row)?)),
        None => Ok(None),
    }
}

/// True when the entry existed (and is now gone).
pub async fn delete(db: &impl Queries, user_id: Uuid, id: Uuid) -> Result<bool, DbError> {
    let deleted = db
        .execute(
            "DELETE FROM time_entries WHERE id = $1 AND user_id = $2",
            &[param(&id), param(&user_id)],
        )
        .await?;
    Ok(deleted == 1)
}

/// The SELECT for one page. Only fixed fragments are joined, one per filter
/// that is present, so each combination is planned for the filters it has:
/// the keyset condition `(date, id) > (...)` then bounds the scan of
/// `time_entries_user_date_id_idx` instead of being a filter after it.
pub fn page_sql(params: &ListParams) -> String {
    let mut sql = format!("SELECT {COLUMNS} FROM time_entries WHERE user_id = $1");
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    if params.from.is_some() {
        sql.push_str(&format!(" AND date >= ${}", next()));
    }
    if params.to.is_some() {
        sql.push_str(&format!(" AND date < ${}", next()));
    }
    if params.source.is_some() {
        sql.push_str(&format!(" AND source = ${}", next()));
    }
    if params.project.is_some() {
        sql.push_str(&format!(" AND project = ${}", next()));
    }
    if params.cursor.is_some() {
        let (d, i) = (next(), next());
        sql.push_str(&format!(" AND (date, id) > (${d}, ${i})"));
    }
    sql.push_str(&format!(" ORDER BY date, id LIMIT ${}", next()));
    sql
}

/// One page and the cursor of the next one (`None` on the last page).
pub async fn list(
    db: &impl Queries,
    user_id: Uuid,
    params: &ListParams,
) -> Result<(Vec<TimeEntry>, Option<Cursor>), DbError> {
    let sql = page_sql(params);
    // One row past the page tells whether another page follows.
    let fetch = params.limit + 1;
    // In the order of `page_sql`'s placeholders, each with its type.
    let mut args: Vec<Param> = vec![param(&user_id)];
    if let Some(from) = &params.from {
        args.push(param(from));
    }
    if let Some(to) = &params.to {
        args.push(param(to));
    }
    if let Some(source) = &params.source {
        args.push(param(source));
    }
    if let Some(project) = &params.project {
        args.push(param(project));
    }
    if let Some(cursor) = &params.cursor {
        args.push(param(&cursor.date));
        args.push(param(&cursor.id));
    }
    args.push(param(&fetch));
    let rows = db.query(&sql, &args).await?;
    let mut entries = rows
        .iter()
        .map(TimeEntry::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if entries.len() as i64 > params.limit {
        entries.truncate(params.limit as usize);
        entries.last().map(|e| Cursor {
            date: e.date,
            id: e.id,
        })
    } else {
        None
    };
    Ok((entries, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Query;

    #[test]
    fn page_sql_numbers_parameters_in_order() {
        let all = ListParams::parse(&Query::parse(Some(
            "from=2024-01-01T00:00:00Z&to=2024-02-01T00:00:00Z&source=toggl&project=p&cursor=000000000000000000000000000000000000000000000000",
        )))
        .unwrap();
        assert_eq!(
            page_sql(&all),
            format!("SELECT {COLUMNS} FROM time_entries WHERE user_id = $1 AND date >= $2 AND date < $3 AND source = $4 AND project = $5 AND (date, id) > ($6, $7) ORDER BY date, id LIMIT $8")
        );
        let none = ListParams::parse(&Query::parse(None)).unwrap();
        assert_eq!(
            page_sql(&none),
            format!(
                "SELECT {COLUMNS} FROM time_entries WHERE user_id = $1 ORDER BY date, id LIMIT $2"
            )
        );
    }
}
