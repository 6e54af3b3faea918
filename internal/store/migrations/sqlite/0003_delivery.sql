-- Step delivery: message templates, scenarios and their enrolments, the outbox of what is
-- to be sent (deliveries) and the API calls that send it (batches).

CREATE TABLE templates (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL,                   -- JSON: message.Template
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (channel_id, key)
);

CREATE TABLE scenarios (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    definition TEXT NOT NULL,             -- JSON: scenario.Definition (trigger, steps, stop rules)
    trigger_type TEXT NOT NULL,           -- indexed copy of the definition's trigger, for event lookup
    trigger_value TEXT NOT NULL DEFAULT '',
    enabled INTEGER NOT NULL DEFAULT 1,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (channel_id, key)
);
CREATE INDEX scenarios_trigger ON scenarios (channel_id, trigger_type) WHERE enabled = 1;

-- One row per friend and scenario. A step is identified by its key, not its position, so
-- editing a running scenario neither repeats nor skips a step for friends already in it.
CREATE TABLE enrollments (
    id INTEGER PRIMARY KEY,
    scenario_id INTEGER NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
    friend_id INTEGER NOT NULL REFERENCES friends (id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL,
    state TEXT NOT NULL,                  -- active | completed | stopped
    next_step TEXT NOT NULL DEFAULT '',   -- key of the next step to run
    anchor_at INTEGER NOT NULL,           -- when the current run began (enrolment)
    last_step_at INTEGER,                 -- when the previous step ran
    due_at INTEGER,                       -- when next_step runs; NULL unless active
    runs INTEGER NOT NULL DEFAULT 1,      -- times the friend entered the scenario
    stop_reason TEXT NOT NULL DEFAULT '',
    reply_token TEXT NOT NULL DEFAULT '', -- from the event that enrolled the friend, while fresh
    reply_expires_at INTEGER,
    updated_at INTEGER NOT NULL,
    UNIQUE (scenario_id, friend_id)
);
CREATE INDEX enrollments_due ON enrollments (due_at) WHERE state = 'active';
CREATE INDEX enrollments_friend ON enrollments (friend_id);

-- The outbox: what one friend is to receive, written in the same transaction as the
-- state change that caused it. Rows with the same content_hash can share a multicast.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    friend_id INTEGER NOT NULL REFERENCES friends (id) ON DELETE CASCADE,
    line_user_id TEXT NOT NULL,
    source TEXT NOT NULL,                 -- scenario | autoreply | broadcast | api
    source_id INTEGER,                    -- enrolment, auto-reply or broadcast
    source_ref TEXT NOT NULL DEFAULT '',  -- e.g. the step key
    messages TEXT NOT NULL,               -- rendered JSON array of message objects
    content_hash TEXT NOT NULL,
    reply_token TEXT NOT NULL DEFAULT '',
    reply_expires_at INTEGER,
    state TEXT NOT NULL DEFAULT 'pending', -- pending | sending | sent | failed | dropped | cancelled
    method TEXT NOT NULL DEFAULT '',      -- reply | push | multicast, once sent
    batch_id INTEGER,
    due_at INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX deliveries_due ON deliveries (due_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_friend ON deliveries (friend_id, state);
CREATE INDEX deliveries_batch ON deliveries (batch_id);
CREATE INDEX deliveries_source ON deliveries (source, source_id);

-- One Messaging API call. Its members are fixed before the call and its retry key is
-- derived from its id, so a call retried after a crash is recognised by LINE (409).
CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    method TEXT NOT NULL,                 -- reply | push | multicast
    messages TEXT NOT NULL,
    recipients TEXT NOT NULL,             -- JSON array of LINE user IDs (the reply token for reply)
    size INTEGER NOT NULL,
    state TEXT NOT NULL,                  -- sending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL,         -- a crashed sender's batch is taken over after this
    request_id TEXT NOT NULL DEFAULT '',
    accepted_earlier INTEGER NOT NULL DEFAULT 0, -- LINE answered 409: sent by an earlier attempt
    last_error TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX batches_open ON batches (lease_until) WHERE state = 'sending';
