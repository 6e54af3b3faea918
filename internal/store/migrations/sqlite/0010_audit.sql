-- The audit log: who did what to whom, when and from where. Append-only and hash-chained
-- (package audit): every record carries the hash of the one before it, so a record
-- changed, removed or inserted directly in the database breaks the chain, and
-- `linestep audit verify` finds where. No friend's personal data is stored here: the
-- subject is an ID and fields are field keys, never values.
--
-- seq is assigned by the appender as the last seq + 1 under the writer lock, never by
-- AUTOINCREMENT: a rolled-back append leaves no gap, so a gap always means a deletion.
-- There is no foreign key to channels: the log outlives what it talks about, and a
-- removed channel must not take its audit records with it.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    actor_kind TEXT NOT NULL,               -- staff | token | system | ...
    actor_id TEXT NOT NULL DEFAULT '',      -- staff ID or API token ID
    actor_name TEXT NOT NULL DEFAULT '',    -- staff login or token name
    action TEXT NOT NULL,                   -- dotted name, e.g. friend.view
    channel_id TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',       -- e.g. friend:42
    fields TEXT NOT NULL DEFAULT '[]',      -- JSON array of field keys
    client_addr TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}',      -- JSON object of non-personal facts
    -- Hex SHA-256. TEXT, not JSON types, for every hashed column: the hash covers the
    -- stored bytes, which the database must give back unchanged.
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX audit_log_created ON audit_log (created_at);
CREATE INDEX audit_log_actor ON audit_log (actor_kind, actor_id, seq);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
CREATE INDEX audit_log_channel ON audit_log (channel_id, seq);

-- Append-only. Someone with write access to the file can drop these triggers; the hash
-- chain is what shows that they then changed something.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;
