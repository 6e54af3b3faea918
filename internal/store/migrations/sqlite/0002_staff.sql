-- Staff who use the console. The console issue grows this into workspaces, roles and
-- two-factor sign-in; here: the owner, one-time sign-in links and sessions.
CREATE TABLE staff (
    id INTEGER PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,                       -- owner | admin | operator | analyst
    password_hash TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    disabled_at INTEGER
);

-- One-time sign-in links: only a hash of the token is stored, so a copy of the database
-- cannot be used to sign in.
CREATE TABLE staff_login_links (
    token_hash BLOB PRIMARY KEY,
    staff_id INTEGER NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

CREATE TABLE staff_sessions (
    token_hash BLOB PRIMARY KEY,
    staff_id INTEGER NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at INTEGER,
    client_addr TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX staff_sessions_staff ON staff_sessions (staff_id);
