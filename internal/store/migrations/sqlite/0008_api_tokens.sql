-- Bearer tokens for the JSON API (/api/v1). Only the SHA-256 of a token is stored, so a
-- copy of the database cannot be used to call the API; the token is shown once, when made.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    role TEXT NOT NULL,                   -- owner | admin | operator | analyst
    -- NULL: every channel. A token of a removed channel goes with it.
    channel_id TEXT REFERENCES channels (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,                 -- updated at most once a minute
    revoked_at INTEGER
);
