//! `/api/auth/*`: registration, login, logout, the current user, password change.

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{self, User};
use crate::db::{param, Queries};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::read_json;
use crate::openapi::{error_responses, json_body};
use crate::response::{created_json, no_content, ok_json, Body};
use crate::router::{Ctx, Router};
use crate::throttle;
use crate::validation;

/// Serializes registrations so that "no user exists yet" is decided by one request at a time.
const REGISTRATION_LOCK: i64 = 0x7469_6d65_7472_6567; // "timetreg"

pub fn register_routes(router: &mut Router) {
    router.add(
        Method::POST,
        "/api/auth/register",
        json!({
            "summary": "Create an account",
            "description": "Open while no user exists, or always with ALLOW_REGISTRATION=true; otherwise 403.",
            "tags": ["accounts"],
            "requestBody": json_body("Credentials"),
            "responses": merge(json!({
                "201": {"description": "The new user", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}}
            }), &[400, 403, 409, 413, 415, 422, 503]),
        }),
        register,
    );
    router.add(
        Method::POST,
        "/api/auth/login",
        json!({
            "summary": "Log in",
            "description": "Returns a session token and sets the `session` cookie (HttpOnly, SameSite=Lax). After 5 failures for an email in 15 minutes, answers 429 with Retry-After.",
            "tags": ["accounts"],
            "requestBody": json_body("Credentials"),
            "responses": merge(json!({
                "200": {
                    "description": "Logged in",
                    "headers": {"Set-Cookie": {"schema": {"type": "string"}, "description": "session=<token>; Path=/; HttpOnly; SameSite=Lax[; Secure]"}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LoginResult"}}}
                }
            }), &[400, 401, 413, 415, 422, 429, 503]),
        }),
        login,
    );
    router.add(
        Method::POST,
        "/api/auth/logout",
        json!({
            "summary": "End the current session",
            "tags": ["accounts"],
            "security": [{"bearerAuth": []}, {"cookieAuth": []}],
            "responses": merge(json!({"204": {"description": "The session is gone"}}), &[401, 403, 503]),
        }),
        logout,
    );
    router.add(
        Method::GET,
        "/api/auth/me",
        json!({
            "summary": "The current user",
            "tags": ["accounts"],
            "security": [{"bearerAuth": []}, {"cookieAuth": []}],
            "responses": merge(json!({
                "200": {"description": "The user", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}}
            }), &[401, 503]),
        }),
        me,
    );
    router.add(
        Method::POST,
        "/api/auth/password",
        json!({
            "summary": "Change the password",
            "description": "Ends every session of the user, this one included.",
            "tags": ["accounts"],
            "security": [{"bearerAuth": []}, {"cookieAuth": []}],
            "requestBody": json_body("PasswordChange"),
            "responses": merge(json!({"204": {"description": "Changed; every session has ended"}}), &[400, 401, 403, 413, 415, 422, 429, 503]),
        }),
        change_password,
    );
    router.schema(
        "Credentials",
        json!({
            "type": "object",
            "required": ["email", "password"],
            "properties": {
                "email": {"type": "string", "format": "email", "maxLength": 254},
                "password": {"type": "string", "minLength": validation::PASSWORD_MIN_CHARS, "description": "At most 1024 bytes"}
            }
        }),
    );
    router.schema(
        "PasswordChange",
        json!({
            "type": "object",
            "required": ["currentPassword", "newPassword"],
            "properties": {
                "currentPassword": {"type": "string"},
                "newPassword": {"type": "string", "minLength": validation::PASSWORD_MIN_CHARS, "description": "At most 1024 bytes"}
            }
        }),
    );
    router.schema(
        "User",
        json!({
            "type": "object",
            "required": ["id", "email", "createdAt"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "email": {"type": "string", "format": "email"},
                "createdAt": {"type": "string", "format": "date-time"}
            }
        }),
    );
    router.schema(
        "LoginResult",
        json!({
            "type": "object",
            "required": ["token", "expiresAt", "user"],
            "properties": {
                "token": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "Send as Authorization: Bearer <token>"},
                "expiresAt": {"type": "string", "format": "date-time", "description": "Idle expiry; each use extends it, up to the session's absolute lifetime"},
                "user": {"$ref": "#/components/schemas/User"}
            }
        }),
    );
}

fn merge(mut responses: serde_json::Value, errors: &[u16]) -> serde_json::Value {
    if let (Some(map), serde_json::Value::Object(errors)) =
        (responses.as_object_mut(), error_responses(errors))
    {
        map.extend(errors);
    }
    responses
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "Invalid email or password.",
    )
}

async fn register(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let body: Credentials = read_json(req).await?;
    let mut problems = Vec::new();
    let email = validation::email("email", &body.email)
        .map_err(|p| problems.push(p))
        .ok();
    if let Err(problem) = validation::new_password("password", &body.password) {
        problems.push(problem);
    }
    let Some(email) = email.filter(|_| problems.is_empty()) else {
        return Err(ApiError::validation(problems));
    };

    let state = &ctx.state;
    let allow_any = state.config.allow_registration;
    // Cheap refusal before the expensive hash; decided for good under the lock below.
    if !allow_any && users_exist(&state.db().await?).await? {
        return Err(registration_closed());
    }
    let password_hash = state.passwords.hash(body.password).await?;

    let mut client = state.db().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[param(&REGISTRATION_LOCK)],
    )
    .await?;
    if !allow_any && users_exist(&tx).await? {
        return Err(registration_closed());
    }
    let inserted = tx
        .query_opt(
            "INSERT INTO users (email, password_hash) VALUES ($1, $2)
             ON CONFLICT (email) DO NOTHING
             RETURNING id, email, created_at",
            &[param(&email), param(&password_hash)],
        )
        .await?;
    let Some(row) = inserted else {
        return Err(ApiError::conflict(
            "email_taken",
            "An account with this email already exists.",
        ));
    };
    tx.commit().await?;
    let user = User::from_row(&row);
    tracing::info!(user_id = %user.id, "account registered");
    Ok(created_json(&user))
}

async fn users_exist(client: &impl Queries) -> ApiResult<bool> {
    Ok(client
        .query_one("SELECT EXISTS (SELECT 1 FROM users)", &[])
        .await?
        .get(0))
}

fn registration_closed() -> ApiError {
    ApiError::forbidden(
        "registration_closed",
        "Registration is closed; ask the operator to set ALLOW_REGISTRATION=true.",
    )
}

async fn login(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let body: Credentials = read_json(req).await?;
    let mut problems = Vec::new();
    if body.email.trim().is_empty() {
        problems.push(Problem::field("email", "is required"));
    }
    if body.password.is_empty() {
        problems.push(Problem::field("password", "is required"));
    } else if body.password.len() > validation::PASSWORD_MAX_BYTES {
        problems.push(Problem::field(
            "password",
            format!("must be at most {} bytes", validation::PASSWORD_MAX_BYTES),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    // Normalized like registration, so that case variants share one failure count.
    let email = body.email.trim().to_ascii_lowercase();
    let state = &ctx.state;

    // The connection goes back to the pool while the hash is checked.
    let (attempt, stored) = {
        let client = state.db().await?;
        let attempt = throttle::begin(&client, &email).await?;
        let stored = client
            .query_opt(
                "SELECT id, email, created_at, password_hash FROM users WHERE email = $1",
                &[param(&email)],
            )
            .await?;
        (attempt, stored)
    };
    let stored_hash = stored
        .as_ref()
        .map(|row| row.get::<_, String>("password_hash"));
    if !state
        .passwords
        .verify(body.password, stored_hash.clone())
        .await?
    {
        attempt.failed(&state.db().await?).await?;
        tracing::info!("login failed");
        return Err(invalid_credentials());
    }
    let (Some(row), Some(verified_hash)) = (stored, stored_hash) else {
        return Err(invalid_credentials());
    };
    let user = User::from_row(&row);

    let client = state.db().await?;
    client
        .execute(
            "DELETE FROM sessions WHERE user_id = $1
             AND (expires_at <= now() OR absolute_expires_at <= now())",
            &[param(&user.id)],
        )
        .await?;
    let created = auth::create_session(&client, &state.config, user.id, &verified_hash).await?;
    let Some((token, expires_at)) = created else {
        // The password changed while this one was being checked: it is wrong now, and
        // counts like any wrong password.
        attempt.failed(&client).await?;
        tracing::info!(user_id = %user.id, "login lost the race with a password change");
        return Err(invalid_credentials());
    };
    attempt.succeeded(&client).await?;
    tracing::info!(user_id = %user.id, "logged in");

    let expires_at = expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(ApiError::internal)?;
    let mut response = ok_json(&json!({ "token": token, "expiresAt": expires_at, "user": user }));
    response.headers_mut().insert(
        header::SET_COOKIE,
        auth::session_cookie_header(&token, &state.config),
    );
    Ok(response)
}

async fn logout(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let state = &ctx.state;
    let session = auth::authenticate_session(&req, state).await?;
    state
        .db()
        .await?
        .execute(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[param(&session.token_hash.as_bytes())],
        )
        .await?;
    tracing::info!(user_id = %session.user.id, "logged out");
    let mut response = no_content();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, auth::clear_cookie_header(&state.config));
    Ok(response)
}

async fn me(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let user = auth::authenticate(&req, &ctx.state).await?;
    Ok(ok_json(&user))
}

async fn change_password(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let state = &ctx.state;
    let user = auth::authenticate(&req, state).await?;
    let body: PasswordChange = read_json(req).await?;
    if let Err(problem) = validation::new_password("newPassword", &body.new_password) {
        return Err(ApiError::validation(vec![problem]));
    }
    // Guessing the current password with a stolen session counts like failed logins.
    let (attempt, stored_hash) = {
        let client = state.db().await?;
        let attempt = throttle::begin(&client, &user.email).await?;
        let row = client
            .query_opt(
                "SELECT password_hash FROM users WHERE id = $1",
                &[param(&user.id)],
            )
            .await?;
        (attempt, row.map(|row| row.get::<_, String>(0)))
    };
    if stored_hash.is_none() {
        return Err(ApiError::unauthorized());
    }
    if !state
        .passwords
        .verify(body.current_password, stored_hash)
        .await?
    {
        attempt.failed(&state.db().await?).await?;
        return Err(ApiError::forbidden(
            "invalid_current_password",
            "The current password is not correct.",
        ));
    }
    let new_hash = state.passwords.hash(body.new_password).await?;

    let mut client = state.db().await?;
    attempt.succeeded(&client).await?;
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        &[param(&user.id), param(&new_hash)],
    )
    .await?;
    let ended = tx
        .execute(
            "DELETE FROM sessions WHERE user_id = $1",
            &[param(&user.id)],
        )
        .await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, sessions_ended = ended, "password changed");
    let mut response = no_content();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, auth::clear_cookie_header(&state.config));
    Ok(response)
}
