-- Accounts, sessions, login throttling and time entries.

CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);

-- Only the SHA-256 of a session token is stored: a leaked table grants no session.
CREATE TABLE sessions (
    token_hash          bytea       PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id             uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    CHECK (expires_at <= absolute_expires_at)
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Failed logins per (lower-cased) email, shared by every replica.
CREATE TABLE login_failures (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email     text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_email_failed_at_idx ON login_failures (email, failed_at);

CREATE TABLE time_entries (
    id          uuid             PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid             NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source      text             NOT NULL CHECK (source ~ '^[a-z][a-z0-9_-]{0,31}$'),
    external_id text             NOT NULL CHECK (length(external_id) BETWEEN 1 AND 255),
    date        timestamptz      NOT NULL,
    duration    double precision NOT NULL CHECK (duration >= 0 AND duration < 'Infinity'),
    project     text             NOT NULL DEFAULT '',
    description text             NOT NULL DEFAULT '',
    created_at  timestamptz      NOT NULL DEFAULT now(),
    updated_at  timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT time_entries_user_source_external_id_key UNIQUE (user_id, source, external_id)
);
-- Serves one user's entries by date, then id (keyset pagination and range summaries).
CREATE INDEX time_entries_user_date_id_idx ON time_entries (user_id, date, id);
