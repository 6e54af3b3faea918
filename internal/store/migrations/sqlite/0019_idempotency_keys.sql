-- Keys of requests that create or send (a broadcast), chosen by the client (an API
-- Idempotency-Key header) or the console (a key in the confirmation form): a request
-- repeated after a timeout, a dropped connection or a double click answers what the
-- first did instead of broadcasting to everyone again. Kept a day, like LINE's retry
-- keys. The answer is what was returned (the created resource, or where to go), never a
-- friend's data.
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,          -- whose key: api-token:<id> or staff:<id>
    idem_key TEXT NOT NULL,
    route TEXT NOT NULL,          -- the endpoint the key was first used with
    channel_id TEXT NOT NULL,
    request_hash TEXT NOT NULL,   -- SHA-256 of the request as read: a repeat must match it
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
