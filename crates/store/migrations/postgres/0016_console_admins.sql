-- Console admin accounts, their sign-in sessions and failed sign-ins (issue 15). PostgreSQL dialect; keep in step with
-- migrations/sqlite/0016_console_admins.sql.

-- An admin who signs in to the console with a password. Only the Argon2id PHC string is stored.
CREATE TABLE console_admins (
    name          TEXT    NOT NULL PRIMARY KEY,
    role          TEXT    NOT NULL CHECK (role IN ('read', 'operate', 'admin')),
    password_hash TEXT    NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    disabled_at   BIGINT
);

-- A signed-in browser. Only the SHA-256 of the 256-bit session token (the cookie) is stored; the CSRF token
-- is useless without the cookie. idle expiry = last_seen_at + idle timeout; expires_at is the absolute end.
CREATE TABLE console_sessions (
    token_hash    TEXT    NOT NULL PRIMARY KEY,
    admin_name    TEXT    NOT NULL REFERENCES console_admins (name) ON DELETE CASCADE,
    csrf          TEXT    NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX console_sessions_admin ON console_sessions (admin_name);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- Failed sign-ins, one row each, keyed by what they count against: 'name:<admin name>' or 'addr:<ip>'.
-- Rows older than the backoff window are pruned when new ones are written.
CREATE TABLE console_signin_failures (
    id    BIGSERIAL PRIMARY KEY,
    key   TEXT    NOT NULL,
    at    BIGINT NOT NULL
);
CREATE INDEX console_signin_failures_key_at ON console_signin_failures (key, at);
