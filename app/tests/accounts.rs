//! Accounts against a real PostgreSQL and the real app binary: registration, login, sessions,
//! logout, password change, throttling across two processes, and what never leaks.

mod pg_control;
mod support;

use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

use pg_control::Sql;
use support::{login, migrated_db, register, start_app};
use testkit::{Database, Response, Running};

const PASSWORD: &str = "correct horse battery";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

#[test]
fn register_login_me_logout_and_password_change() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[]);

    // The first account may register; the email is normalized.
    let created = register(&app, "  Ada@Example.com ", PASSWORD);
    created.expect(201);
    let user = created.json();
    assert_eq!(user["email"], "ada@example.com");
    assert!(user["id"].as_str().unwrap().len() == 36);
    assert!(!created.text().contains("$argon2") && !created.text().contains(PASSWORD));

    // Then registration is closed.
    let closed = register(&app, "eve@example.com", PASSWORD);
    closed.expect(403);
    assert_eq!(closed.error_code(), "registration_closed");

    // One 401 message for a wrong password and an unknown email.
    let wrong = app.api().post_json(
        "/api/auth/login",
        &[],
        &json!({"email": "ada@example.com", "password": "not the password"}),
    );
    wrong.expect(401);
    let unknown = app.api().post_json(
        "/api/auth/login",
        &[],
        &json!({"email": "nobody@example.com", "password": "not the password"}),
    );
    unknown.expect(401);
    assert_eq!(wrong.json(), unknown.json());

    // Login: token, expiry, user, cookie.
    let response = app.api().post_json(
        "/api/auth/login",
        &[],
        &json!({"email": "ADA@example.com", "password": PASSWORD}),
    );
    response.expect(200);
    let body = response.json();
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(body["user"], user);
    let expires_at = body["expiresAt"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(expires_at, &time::format_description::well_known::Rfc3339)
            .unwrap()
            > time::OffsetDateTime::now_utc() + time::Duration::days(6)
    );
    assert!(!response.text().contains("$argon2"));
    let set_cookie = response.header("set-cookie").unwrap().to_string();
    assert!(
        set_cookie.starts_with(&format!("session={token};")),
        "{set_cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");

    // Only the SHA-256 of the token is stored.
    let stored = db.psql("SELECT encode(token_hash, 'hex') FROM sessions");
    let expected: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(stored, expected);
    assert_eq!(
        db.psql(&format!(
            "SELECT count(*) FROM sessions WHERE encode(token_hash, 'escape') LIKE '%{token}%'"
        )),
        "0"
    );

    // The user behind the bearer token and behind the cookie.
    app.api()
        .get("/api/auth/me", &[("Authorization", &bearer(&token))])
        .expect(200);
    let me = app
        .api()
        .get("/api/auth/me", &[("Cookie", &cookie_pair(&set_cookie))]);
    me.expect(200);
    assert_eq!(me.json(), user);
    assert!(!me.text().contains("$argon2") && !me.text().contains(&expected));

    // Bad credentials: 401 each.
    for auth in [
        "Bearer ".to_string(),
        "Bearer nothex".to_string(),
        format!("Basic {token}"),
        bearer(&"0".repeat(64)),
        token.clone(),
    ] {
        let response = app.api().get("/api/auth/me", &[("Authorization", &auth)]);
        response.expect(401);
        assert_eq!(response.error_code(), "unauthorized");
    }
    app.api().get("/api/auth/me", &[]).expect(401);

    // Cookie-authenticated logout needs a trusted Origin.
    let cookie = cookie_pair(&set_cookie);
    let no_origin = app
        .api()
        .request("POST", "/api/auth/logout", &[("Cookie", &cookie)], None);
    no_origin.expect(403);
    assert_eq!(no_origin.error_code(), "origin_required");
    let foreign = app.api().request(
        "POST",
        "/api/auth/logout",
        &[("Cookie", &cookie), ("Origin", "https://evil.example")],
        None,
    );
    foreign.expect(403);
    assert_eq!(foreign.error_code(), "origin_not_allowed");
    let own_origin = format!("http://127.0.0.1:{}", app.api().port());
    let logout = app.api().request(
        "POST",
        "/api/auth/logout",
        &[("Cookie", &cookie), ("Origin", &own_origin)],
        None,
    );
    logout.expect(204);
    assert!(logout.header("set-cookie").unwrap().contains("Max-Age=0"));
    // Revoked: both ways in fail.
    app.api()
        .get("/api/auth/me", &[("Authorization", &bearer(&token))])
        .expect(401);
    app.api()
        .get("/api/auth/me", &[("Cookie", &cookie)])
        .expect(401);

    // Password change ends every session.
    let (first, _) = login(&app, "ada@example.com", PASSWORD);
    let (second, _) = login(&app, "ada@example.com", PASSWORD);
    let change = |auth: &str, current: &str, new: &str| {
        app.api().post_json(
            "/api/auth/password",
            &[("Authorization", auth)],
            &json!({"currentPassword": current, "newPassword": new}),
        )
    };
    let wrong_current = change(&bearer(&first), "not it at all", "a new password");
    wrong_current.expect(403);
    assert_eq!(wrong_current.error_code(), "invalid_current_password");
    let too_short = change(&bearer(&first), PASSWORD, "short");
    too_short.expect(422);
    assert_eq!(
        too_short.json()["error"]["details"][0]["field"],
        "newPassword"
    );
    let missing = app.api().post_json(
        "/api/auth/password",
        &[("Authorization", &bearer(&first))],
        &json!({"currentPassword": PASSWORD}),
    );
    missing.expect(400);
    assert_eq!(missing.json()["error"]["field"], "newPassword");
    change(&bearer(&first), PASSWORD, "a brand new password").expect(204);
    for token in [&first, &second] {
        app.api()
            .get("/api/auth/me", &[("Authorization", &bearer(token))])
            .expect(401);
    }
    assert_eq!(db.psql("SELECT count(*) FROM sessions"), "0");
    app.api()
        .post_json(
            "/api/auth/login",
            &[],
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .expect(401);
    login(&app, "ada@example.com", "a brand new password");

    // No secret in any log line.
    let log = app.log();
    for secret in [
        PASSWORD,
        "a brand new password",
        token.as_str(),
        first.as_str(),
        expected.as_str(),
        "$argon2",
        db.cluster.password(),
    ] {
        assert!(
            !log.contains(secret),
            "the log contains a secret: {secret}: {}",
            log.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(log.contains("logged in"), "the log records logins:\n{log}");
}

#[test]
fn expiry_is_sliding_and_absolute() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[]);
    register(&app, "ada@example.com", PASSWORD).expect(201);
    let me = |token: &str| {
        app.api()
            .get("/api/auth/me", &[("Authorization", &bearer(token))])
    };

    // Idle expiry passed.
    let (idle, _) = login(&app, "ada@example.com", PASSWORD);
    db.psql("UPDATE sessions SET expires_at = now() - interval '1 second'");
    me(&idle).expect(401);

    // Absolute expiry passed, although the idle one has not.
    let (old, _) = login(&app, "ada@example.com", PASSWORD);
    let hash_of = |token: &str| -> String {
        Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let old_hash = hash_of(&old);
    db.psql(&format!(
        "UPDATE sessions SET expires_at = now() - interval '1 second', \
         absolute_expires_at = now() - interval '1 second' WHERE token_hash = decode('{old_hash}', 'hex')"
    ));
    me(&old).expect(401);

    // Use extends the idle expiry, but never past the absolute one.
    let (active, _) = login(&app, "ada@example.com", PASSWORD);
    let active_hash = hash_of(&active);
    db.psql(&format!(
        "UPDATE sessions SET last_seen_at = now() - interval '10 minutes', \
         expires_at = now() + interval '1 minute', absolute_expires_at = now() + interval '1 hour' \
         WHERE token_hash = decode('{active_hash}', 'hex')"
    ));
    me(&active).expect(200);
    let capped = db.psql(&format!(
        "SELECT expires_at = absolute_expires_at FROM sessions WHERE token_hash = decode('{active_hash}', 'hex')"
    ));
    assert_eq!(capped, "t");

    let (fresh, _) = login(&app, "ada@example.com", PASSWORD);
    let fresh_hash = hash_of(&fresh);
    db.psql(&format!(
        "UPDATE sessions SET last_seen_at = now() - interval '10 minutes', expires_at = now() + interval '1 minute' \
         WHERE token_hash = decode('{fresh_hash}', 'hex')"
    ));
    me(&fresh).expect(200);
    let extended = db.psql(&format!(
        "SELECT expires_at > now() + interval '6 days' FROM sessions WHERE token_hash = decode('{fresh_hash}', 'hex')"
    ));
    assert_eq!(extended, "t");
}

#[test]
fn six_failed_logins_over_two_processes_are_throttled() {
    let db = migrated_db();
    let a = start_app(&db.url(), &[]);
    let b = start_app(&db.url(), &[]);
    register(&a, "ada@example.com", PASSWORD).expect(201);
    let attempt = |app: &Running, email: &str, password: &str| {
        app.api().post_json(
            "/api/auth/login",
            &[],
            &json!({"email": email, "password": password}),
        )
    };

    for i in 0..5 {
        let app = if i % 2 == 0 { &a } else { &b };
        // Case variants of the email count as the same account.
        let email = if i == 3 {
            "ADA@example.com"
        } else {
            "ada@example.com"
        };
        attempt(app, email, &format!("wrong guess {i}")).expect(401);
    }
    for app in [&b, &a] {
        let limited = attempt(app, "ada@example.com", "wrong guess 6");
        limited.expect(429);
        assert_eq!(limited.error_code(), "too_many_requests");
        let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "Retry-After {retry}");
    }
    // Even the right password waits now.
    attempt(&a, "ada@example.com", PASSWORD).expect(429);
    assert_eq!(
        db.psql("SELECT count(*) FROM login_failures WHERE email = 'ada@example.com'"),
        "5"
    );
    // Another email is not affected.
    attempt(&b, "bob@example.com", "whatever pw").expect(401);

    // Once the window has passed, the account opens again and success clears the count.
    db.psql("UPDATE login_failures SET failed_at = now() - interval '16 minutes'");
    login(&b, "ada@example.com", PASSWORD);
    assert_eq!(
        db.psql("SELECT count(*) FROM login_failures WHERE email = 'ada@example.com'"),
        "0"
    );
    for app in [&a, &b] {
        assert!(!app.log().contains(PASSWORD));
        assert!(!app.log().contains("wrong guess"));
    }

    // Many right logins to one account at once: those beyond 5 in flight wait a second,
    // none is told to wait the whole window, and none leaves a failure behind.
    let answers: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let app = if i % 2 == 0 { &a } else { &b };
                scope.spawn(move || {
                    let response = attempt(app, "ada@example.com", PASSWORD);
                    (
                        response.status,
                        response.header("retry-after").map(str::to_string),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        answers.iter().any(|(status, _)| *status == 200),
        "{answers:?}"
    );
    for (status, retry_after) in &answers {
        match status {
            200 => {}
            429 => assert_eq!(retry_after.as_deref(), Some("1"), "{answers:?}"),
            other => panic!("unexpected {other}: {answers:?}"),
        }
    }
    assert_eq!(
        db.psql("SELECT count(*) FROM login_failures WHERE email = 'ada@example.com'"),
        "0"
    );
    login(&a, "ada@example.com", PASSWORD);

    // Attempts left pending by a process that died: in flight for a while, then failures.
    db.psql(
        "INSERT INTO login_failures (email, failed_at) \
         SELECT 'carol@example.com', now() + interval '1 minute' FROM generate_series(1, 5)",
    );
    let pending = attempt(&a, "carol@example.com", "any password");
    pending.expect(429);
    assert_eq!(pending.header("retry-after"), Some("1"));
    db.psql("UPDATE login_failures SET failed_at = now() - interval '1 second' WHERE email = 'carol@example.com'");
    let failed = attempt(&b, "carol@example.com", "any password");
    failed.expect(429);
    let retry: u64 = failed.header("retry-after").unwrap().parse().unwrap();
    assert!((890..=900).contains(&retry), "Retry-After {retry}");
}

#[test]
fn registration_is_race_free_and_optional() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[]);
    // Eight concurrent first registrations: exactly one wins.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let app = &app;
                scope.spawn(move || register(app, &format!("user{i}@example.com"), PASSWORD).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(db.psql("SELECT count(*) FROM users"), "1");
    drop(app);

    let open = start_app(&db.url(), &[("ALLOW_REGISTRATION", "true")]);
    register(&open, "second@example.com", PASSWORD).expect(201);
    let taken = register(&open, "Second@Example.com", PASSWORD);
    taken.expect(409);
    assert_eq!(taken.error_code(), "email_taken");
}

#[test]
fn secure_cookie_when_configured() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[("COOKIE_SECURE", "true")]);
    register(&app, "ada@example.com", PASSWORD).expect(201);
    let (_, set_cookie) = login(&app, "ada@example.com", PASSWORD);
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
}

/// A login and a password change racing for one account, with the order made certain by a row
/// lock the test holds on the user: both requests queue behind it, in the order the test lets
/// them in, and run the moment it is released.
struct PasswordRace {
    db: Database,
    app: Running,
    sql: Sql,
    /// A session from before the change.
    token: String,
}

const NEW_PASSWORD: &str = "a brand new password";
/// Long enough that no statement of the test runs out of time while it waits behind the lock.
const RACE_DB_TIMEOUT: &str = "60s";
const LOCK_WAIT: Duration = Duration::from_secs(30);

impl PasswordRace {
    fn start() -> PasswordRace {
        let db = migrated_db();
        let app = start_app(&db.url(), &[("DB_TIMEOUT", RACE_DB_TIMEOUT)]);
        register(&app, "ada@example.com", PASSWORD).expect(201);
        let (token, _) = login(&app, "ada@example.com", PASSWORD);
        let sql = Sql::connect(&db.url());
        sql.batch("BEGIN");
        let locked = sql.execute(
            "SELECT 1 FROM users WHERE email = 'ada@example.com' FOR UPDATE",
            &[],
        );
        assert_eq!(locked, 1);
        PasswordRace {
            db,
            app,
            sql,
            token,
        }
    }

    fn login_with_old_password(&self) -> Response {
        self.app.api().post_json(
            "/api/auth/login",
            &[],
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
    }

    fn change_password(&self) -> Response {
        self.app.api().post_json(
            "/api/auth/password",
            &[("Authorization", &bearer(&self.token))],
            &json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
        )
    }

    fn wait_until_the_change_waits(&self) {
        self.sql
            .wait_for_lock_waiters("UPDATE users SET password_hash", 1, LOCK_WAIT);
    }

    fn wait_until_the_login_waits(&self) {
        self.sql
            .wait_for_lock_waiters("INSERT INTO sessions", 1, LOCK_WAIT);
    }

    fn release(&self) {
        self.sql.batch("ROLLBACK");
    }

    /// Afterwards only the new password works, and no session from before the change is left.
    fn assert_only_the_new_password_works(&self) {
        self.app
            .api()
            .get("/api/auth/me", &[("Authorization", &bearer(&self.token))])
            .expect(401);
        assert_eq!(self.db.psql("SELECT count(*) FROM sessions"), "0");
        self.login_with_old_password().expect(401);
        login(&self.app, "ada@example.com", NEW_PASSWORD);
    }
}

impl Drop for PasswordRace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("app log:\n{}", self.app.log());
        }
    }
}

#[test]
fn a_login_that_checked_the_old_password_gets_no_session_once_the_change_committed() {
    let race = PasswordRace::start();
    let wrong_password = race.app.api().post_json(
        "/api/auth/login",
        &[],
        &json!({"email": "ada@example.com", "password": "not the password"}),
    );
    wrong_password.expect(401);
    std::thread::scope(|scope| {
        let change = scope.spawn(|| race.change_password());
        race.wait_until_the_change_waits();
        // The login reads the old hash and verifies the old password while the change has not
        // committed yet; it then waits to create its session, behind the change.
        let login = scope.spawn(|| race.login_with_old_password());
        race.wait_until_the_login_waits();
        race.release();

        change.join().unwrap().expect(204);
        let login = login.join().unwrap();
        login.expect(401);
        // The same answer as any wrong password.
        assert_eq!(login.json(), wrong_password.json());
        assert!(login.header("set-cookie").is_none());
    });
    race.assert_only_the_new_password_works();
    race.app
        .wait_log("login lost the race with a password change", LOCK_WAIT);
}

#[test]
fn a_session_created_before_the_change_commits_is_ended_by_it() {
    let race = PasswordRace::start();
    std::thread::scope(|scope| {
        let login = scope.spawn(|| race.login_with_old_password());
        race.wait_until_the_login_waits();
        // The change starts while the login is creating its session and waits behind it.
        let change = scope.spawn(|| race.change_password());
        race.wait_until_the_change_waits();
        race.release();

        let login = login.join().unwrap();
        login.expect(200);
        change.join().unwrap().expect(204);
        let raced = login.json()["token"].as_str().unwrap().to_string();
        race.app
            .api()
            .get("/api/auth/me", &[("Authorization", &bearer(&raced))])
            .expect(401);
    });
    race.assert_only_the_new_password_works();
}
