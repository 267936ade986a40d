//! Sessions and request authentication. A session token is 256 random bits, handed to the
//! client once; the database keeps only its SHA-256, so a leaked table grants no session.

use std::future::Future;
use std::time::Duration;

use http::{header, HeaderMap, HeaderValue, Method, Request};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::AppConfig;
use crate::db::{param, DbError, Queries};
use crate::error::{ApiError, ApiResult};
use crate::security;
use crate::state::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "session";

/// An account as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    pub email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl User {
    /// From a row with `id`, `email`, `created_at` columns.
    pub fn from_row(row: &tokio_postgres::Row) -> Self {
        User {
            id: row.get("id"),
            email: row.get("email"),
            created_at: row.get("created_at"),
        }
    }
}

/// The SHA-256 of a session token: what the database stores.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Kept out of logs and debug output alike.
        f.write_str("TokenHash(..)")
    }
}

impl TokenHash {
    pub fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A fresh token (64 lowercase hex digits encoding 256 random bits) and its hash.
pub fn new_token() -> (String, TokenHash) {
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = TokenHash::of(&token);
    (token, hash)
}

fn is_well_formed_token(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The authenticated user and the session the request used.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub token_hash: TokenHash,
}

/// The user behind the request's bearer token or session cookie, or 401. A cookie on an
/// unsafe method also needs a trusted `Origin` (403 otherwise). Extends the session's idle
/// expiry.
pub fn authenticate<'a, B>(
    req: &Request<B>,
    state: &'a AppState,
) -> impl Future<Output = ApiResult<User>> + Send + 'a {
    let session = authenticate_session(req, state);
    async move { Ok(session.await?.user) }
}

/// Like [`authenticate`], with the session (for logout).
pub fn authenticate_session<'a, B>(
    req: &Request<B>,
    state: &'a AppState,
) -> impl Future<Output = ApiResult<Session>> + Send + 'a {
    // Everything needed from the request is taken now, so the future does not borrow it.
    let token_hash = request_token_hash(req.method(), req.headers(), &state.config);
    async move {
        let token_hash = token_hash?;
        let client = state.db().await?;
        let row = client
            .query_opt(
                "WITH live AS (
                     SELECT user_id FROM sessions
                     WHERE token_hash = $1 AND expires_at > now() AND absolute_expires_at > now()
                 ), touched AS (
                     -- Sliding expiry, written at most once a minute per session.
                     UPDATE sessions
                     SET last_seen_at = now(),
                         expires_at = LEAST(now() + make_interval(secs => $2), absolute_expires_at)
                     WHERE token_hash = $1 AND expires_at > now()
                       AND last_seen_at < now() - interval '1 minute'
                 )
                 SELECT u.id, u.email, u.created_at FROM live JOIN users u ON u.id = live.user_id",
                &[
                    param(&token_hash.as_bytes()),
                    param(&state.config.session_idle.as_secs_f64()),
                ],
            )
            .await?;
        match row {
            Some(row) => Ok(Session {
                user: User::from_row(&row),
                token_hash,
            }),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// Picks the credential: `Authorization: Bearer` first, else the session cookie.
fn request_token_hash(
    method: &Method,
    headers: &HeaderMap,
    config: &AppConfig,
) -> ApiResult<TokenHash> {
    let token = if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| ApiError::unauthorized())?;
        let (scheme, token) = value.split_once(' ').ok_or_else(ApiError::unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthorized());
        }
        token.trim().to_string()
    } else if let Some(token) = session_cookie(headers) {
        security::require_origin_for_cookie(method, headers, &config.cors_origins)?;
        token
    } else {
        return Err(ApiError::unauthorized());
    };
    if !is_well_formed_token(&token) {
        return Err(ApiError::unauthorized());
    }
    Ok(TokenHash::of(&token))
}

/// The value of the `session` cookie, if sent.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
}

/// Deletes sessions past their idle or absolute expiry (run periodically).
pub async fn prune_expired_sessions(client: &impl Queries) -> Result<u64, DbError> {
    client
        .execute(
            "DELETE FROM sessions WHERE expires_at <= now() OR absolute_expires_at <= now()",
            &[],
        )
        .await
}

/// Creates a session for `user_id` if its password hash is still `verified_hash`, the one the
/// caller checked the password against; returns the token and its idle expiry, or `None` when
/// the password changed meanwhile.
///
/// The user's row is locked `FOR SHARE` until the session is committed, so a password change
/// (which updates the row, then deletes the user's sessions, in one transaction) either commits
/// first, and the re-checked hash no longer matches, or waits for this session and deletes it.
pub async fn create_session(
    client: &impl Queries,
    config: &AppConfig,
    user_id: Uuid,
    verified_hash: &str,
) -> ApiResult<Option<(String, OffsetDateTime)>> {
    let (token, hash) = new_token();
    let row = client
        .query_opt(
            "INSERT INTO sessions (token_hash, user_id, expires_at, absolute_expires_at)
             SELECT $1, u.id, now() + make_interval(secs => $3), now() + make_interval(secs => $4)
             FROM users u WHERE u.id = $2 AND u.password_hash = $5
             FOR SHARE
             RETURNING expires_at",
            &[
                param(&hash.as_bytes()),
                param(&user_id),
                param(&config.session_idle.as_secs_f64()),
                param(&config.session_max_age.as_secs_f64()),
                param(&verified_hash),
            ],
        )
        .await?;
    Ok(row.map(|row| (token, row.get("expires_at"))))
}

/// `Set-Cookie` for a new session; the browser keeps it until the absolute expiry, the
/// server enforces the idle one.
pub fn session_cookie_header(token: &str, config: &AppConfig) -> HeaderValue {
    cookie_header(token, config.session_max_age, config.cookie_secure)
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie_header(config: &AppConfig) -> HeaderValue {
    cookie_header("", Duration::ZERO, config.cookie_secure)
}

fn cookie_header(value: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&cookie).expect("cookie values are hex digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_hex_and_distinct() {
        let (a, ha) = new_token();
        let (b, hb) = new_token();
        assert!(is_well_formed_token(&a) && is_well_formed_token(&b));
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert_eq!(TokenHash::of(&a), ha);
        assert_eq!(format!("{ha:?}"), "TokenHash(..)");
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; session=abc; other=1"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc"));
        headers.insert(header::COOKIE, HeaderValue::from_static("sessionx=1"));
        assert_eq!(session_cookie(&headers), None);
    }

    #[test]
    fn cookie_attributes() {
        let set = cookie_header("ab", Duration::from_secs(60), true);
        assert_eq!(
            set.to_str().unwrap(),
            "session=ab; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        let set = cookie_header("", Duration::ZERO, false);
        assert!(!set.to_str().unwrap().contains("Secure"));
    }
}
