//! Login throttling: at most 5 failed attempts per email in 15 minutes, counted in
//! PostgreSQL so that the limit holds across every replica.
//!
//! An attempt is recorded as a failure *before* the password is checked, then counted: of any
//! number of concurrent attempts, whichever commits its row after five others sees at least
//! six and is refused, so no interleaving of replicas lets a sixth guess through. A successful
//! login removes the email's failures; a refused attempt removes its own row.

use tokio_postgres::Client;

use crate::error::{ApiError, ApiResult};

/// Failures allowed in the window.
pub const MAX_FAILURES: i64 = 5;
/// The window, in seconds.
pub const WINDOW_SECS: f64 = 15.0 * 60.0;

/// An attempt in progress, provisionally counted as a failure.
#[derive(Debug)]
pub struct Attempt {
    id: i64,
    email: String,
}

/// Records an attempt for `email`; 429 with `Retry-After` when the email already has
/// [`MAX_FAILURES`] recent failures.
pub async fn begin(client: &Client, email: &str) -> ApiResult<Attempt> {
    let id: i64 = client
        .query_one(
            "INSERT INTO login_failures (email) VALUES ($1) RETURNING id",
            &[&email],
        )
        .await?
        .get(0);
    // A new statement: it sees every attempt committed before it, this one included.
    let row = client
        .query_one(
            "SELECT count(*) AS failures,
                    (SELECT ceil(extract(epoch FROM f.failed_at + make_interval(secs => $3) - now()))::int8
                     FROM login_failures f
                     WHERE f.email = $1 AND f.id <> $2 AND f.failed_at > now() - make_interval(secs => $3)
                     ORDER BY f.failed_at DESC
                     OFFSET $4::int8 - 1 LIMIT 1) AS retry_after
             FROM login_failures
             WHERE email = $1 AND failed_at > now() - make_interval(secs => $3)",
            &[&email, &id, &WINDOW_SECS, &MAX_FAILURES],
        )
        .await?;
    let failures: i64 = row.get("failures");
    if failures > MAX_FAILURES {
        client
            .execute("DELETE FROM login_failures WHERE id = $1", &[&id])
            .await?;
        let retry_after: Option<i64> = row.get("retry_after");
        let retry_after = retry_after.unwrap_or(WINDOW_SECS as i64).max(1) as u64;
        return Err(ApiError::too_many_requests(
            "Too many failed attempts for this account; try again later.",
            retry_after,
        ));
    }
    Ok(Attempt {
        id,
        email: email.to_string(),
    })
}

impl Attempt {
    /// The credentials were right: this and every earlier failure of the email are forgiven.
    pub async fn succeeded(self, client: &Client) -> ApiResult<()> {
        client
            .execute(
                "DELETE FROM login_failures WHERE email = $1 OR id = $2",
                &[&self.email, &self.id],
            )
            .await?;
        Ok(())
    }
}

/// Removes failures older than the window (run periodically).
pub async fn prune(client: &Client) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM login_failures WHERE failed_at <= now() - make_interval(secs => $1)",
            &[&WINDOW_SECS],
        )
        .await
}
