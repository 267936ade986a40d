//! Login throttling: at most 5 failed attempts per email in 15 minutes, counted in
//! PostgreSQL so that the limit holds across every replica.
//!
//! An attempt is recorded *before* the password is checked, as a pending row dated
//! [`PENDING_SECS`] in the future, then counted together with the recent failures: of any
//! number of concurrent attempts, whichever commits its row after five others sees at least
//! six and is refused, so no interleaving of replicas lets a sixth guess through. A wrong
//! password settles the row as a failure dated now; a right one removes the email's rows; a
//! refused attempt removes its own. A row left pending (the process died mid-attempt) turns
//! into a failure once its date passes, so a crash never grants extra guesses.
//!
//! A refusal caused by recent failures says when the oldest of them leaves the window; one
//! caused by attempts still in flight (several logins to one account at once) says 1 second.

use crate::db::{param, DbError, Queries};
use crate::error::{ApiError, ApiResult};

/// Failures allowed in the window.
pub const MAX_FAILURES: i64 = 5;
/// The window, in seconds.
pub const WINDOW_SECS: f64 = 15.0 * 60.0;
/// How far in the future a pending attempt is dated: longer than any attempt takes (the
/// hashing slot wait is 10 s).
pub const PENDING_SECS: f64 = 60.0;

/// An attempt in progress, counted until it is settled.
#[derive(Debug)]
pub struct Attempt {
    id: i64,
    email: String,
}

/// Records an attempt for `email`; 429 with `Retry-After` when the email already has
/// [`MAX_FAILURES`] recent failures or attempts in flight.
pub async fn begin(client: &impl Queries, email: &str) -> ApiResult<Attempt> {
    let id: i64 = client
        .query_one(
            "INSERT INTO login_failures (email, failed_at)
             VALUES ($1, now() + make_interval(secs => $2)) RETURNING id",
            &[param(&email), param(&PENDING_SECS)],
        )
        .await?
        .get(0);
    // A new statement: it sees every attempt committed before it, this one included.
    let row = client
        .query_one(
            "SELECT count(*) AS counted,
                    count(*) FILTER (WHERE failed_at <= now()) AS failures,
                    (SELECT ceil(extract(epoch FROM f.failed_at + make_interval(secs => $3) - now()))::int8
                     FROM login_failures f
                     WHERE f.email = $1 AND f.failed_at <= now()
                       AND f.failed_at > now() - make_interval(secs => $3)
                     ORDER BY f.failed_at DESC
                     OFFSET $4::int8 - 1 LIMIT 1) AS retry_after
             FROM login_failures
             WHERE email = $1 AND id <> $2 AND failed_at > now() - make_interval(secs => $3)",
            &[
                param(&email),
                param(&id),
                param(&WINDOW_SECS),
                param(&MAX_FAILURES),
            ],
        )
        .await?;
    let counted: i64 = row.get("counted");
    if counted < MAX_FAILURES {
        return Ok(Attempt {
            id,
            email: email.to_string(),
        });
    }
    client
        .execute("DELETE FROM login_failures WHERE id = $1", &[param(&id)])
        .await?;
    let failures: i64 = row.get("failures");
    if failures >= MAX_FAILURES {
        let retry_after: Option<i64> = row.get("retry_after");
        let retry_after = retry_after.unwrap_or(WINDOW_SECS as i64).max(1) as u64;
        return Err(ApiError::too_many_requests(
            "Too many failed attempts for this account; try again later.",
            retry_after,
        ));
    }
    Err(ApiError::too_many_requests(
        "Too many attempts for this account at once; try again in a moment.",
        1,
    ))
}

impl Attempt {
    /// The credentials were wrong: the attempt counts as a failure from now on.
    pub async fn failed(self, client: &impl Queries) -> ApiResult<()> {
        client
            .execute(
                "UPDATE login_failures SET failed_at = now() WHERE id = $1",
                &[param(&self.id)],
            )
            .await?;
        Ok(())
    }

    /// The credentials were right: this attempt and the email's earlier failures are
    /// forgiven. Attempts of other requests still in flight stay counted.
    pub async fn succeeded(self, client: &impl Queries) -> ApiResult<()> {
        client
            .execute(
                "DELETE FROM login_failures WHERE id = $2 OR (email = $1 AND failed_at <= now())",
                &[param(&self.email), param(&self.id)],
            )
            .await?;
        Ok(())
    }
}

/// Removes failures older than the window (run periodically).
pub async fn prune(client: &impl Queries) -> Result<u64, DbError> {
    client
        .execute(
            "DELETE FROM login_failures WHERE failed_at <= now() - make_interval(secs => $1)",
            &[param(&WINDOW_SECS)],
        )
        .await
}
