-- Broadcasts to segments, and each account's quiet hours (with its time zone, what "day 2
-- at 10:00" and "nothing between 21:00 and 9:00" mean for its scenarios and broadcasts).

ALTER TABLE channels ADD COLUMN quiet_hours TEXT NOT NULL DEFAULT ''; -- "21:00-09:00" or ''

CREATE TABLE broadcasts (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    name TEXT NOT NULL DEFAULT '',
    segment TEXT NOT NULL,                -- JSON: segment.Filter
    template TEXT NOT NULL,               -- JSON: message.Template
    state TEXT NOT NULL,                  -- scheduled | sending | sent | cancelled | failed
    scheduled_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    cursor_friend_id INTEGER NOT NULL DEFAULT 0, -- expansion so far: friends up to this ID are in the outbox
    recipients INTEGER NOT NULL DEFAULT 0,       -- deliveries written
    skipped INTEGER NOT NULL DEFAULT 0,          -- members whose message could not be rendered
    lease_until INTEGER NOT NULL DEFAULT 0,      -- an instance expanding it holds it until then
    last_error TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX broadcasts_due ON broadcasts (scheduled_at) WHERE state IN ('scheduled', 'sending');
CREATE INDEX broadcasts_channel ON broadcasts (channel_id, id);

CREATE INDEX enrollments_channel ON enrollments (channel_id, scenario_id, state);
ALTER TABLE enrollments ADD COLUMN last_step TEXT NOT NULL DEFAULT ''; -- key of the step that ran last
