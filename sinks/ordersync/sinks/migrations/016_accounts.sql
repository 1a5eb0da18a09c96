-- The web app's accounts, their sessions, and an audit trail (docs/security.md). Kept in PostgreSQL so a
-- restart of the web app keeps everyone logged in and several replicas share the sessions.

-- One row per marketer. password_hash is argon2id (argon2-cffi's encoded form, salt included); lists
-- NULL: every contact list.
CREATE TABLE web_users (
    name                text        PRIMARY KEY CHECK (name <> '' AND length(name) <= 200),
    password_hash       text        NOT NULL,
    lists               text[],
    admin               boolean     NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL,
    password_changed_at timestamptz NOT NULL
);

-- A session is known by the SHA-256 of its random id: the cookie carries the id, so reading this table
-- gives nobody a session. user_name is not a foreign key: the bootstrap account from the environment
-- has no row in web_users.
CREATE TABLE web_sessions (
    id_hash      bytea       PRIMARY KEY,
    user_name    text        NOT NULL,
    started_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_name);

-- Who did what and when, for admins: logins, failed logins, logouts, account changes, segment exports,
-- trigger destination changes. No contact's personal data: exports are recorded by segment and count.
CREATE TABLE audit_log (
    id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     timestamptz NOT NULL,
    actor  text        NOT NULL,
    action text        NOT NULL,
    detail jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
