-- The foundation: channels, the webhook event log, friends, tags, custom fields and the
-- conversation log. Every timestamp is integer milliseconds since the Unix epoch (UTC),
-- the same on both engines. Booleans are 0/1.

-- meta holds installation-wide facts, such as the check value that proves the master key
-- is the one the secrets were sealed with.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_enc BLOB NOT NULL,   -- channel secret, AES-256-GCM under the master key
    token_enc BLOB NOT NULL,    -- channel access token, likewise
    time_zone TEXT NOT NULL DEFAULT 'Asia/Tokyo',
    created_at INTEGER NOT NULL
);

-- Every webhook event, stored before the webhook is answered. The unique key makes a
-- redelivered event a no-op. payload is the raw event and is cleared once processed.
CREATE TABLE webhook_events (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT '',
    line_user_id TEXT NOT NULL DEFAULT '',
    occurred_at INTEGER NOT NULL,
    redelivery INTEGER NOT NULL DEFAULT 0,
    payload BLOB,
    received_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    processed_at INTEGER,
    UNIQUE (channel_id, event_id)
);
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX webhook_events_processed ON webhook_events (processed_at) WHERE state <> 'pending';

CREATE TABLE friends (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    line_user_id TEXT NOT NULL,
    status TEXT NOT NULL,                 -- following | blocked | unknown
    status_at INTEGER NOT NULL,           -- time of the event that set status: older events cannot override it
    display_name TEXT NOT NULL DEFAULT '',
    picture_url TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT '',
    first_followed_at INTEGER,
    followed_at INTEGER,
    blocked_at INTEGER,
    unblocked INTEGER NOT NULL DEFAULT 0, -- the latest follow came after a block
    follow_count INTEGER NOT NULL DEFAULT 0,
    profile_fetched_at INTEGER,
    profile_due_at INTEGER,               -- NULL: no profile fetch is owed
    profile_attempts INTEGER NOT NULL DEFAULT 0,
    last_message_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (channel_id, line_user_id)
);
CREATE INDEX friends_profile_due ON friends (profile_due_at) WHERE profile_due_at IS NOT NULL;

CREATE TABLE tags (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (channel_id, name)
);

CREATE TABLE friend_tags (
    friend_id INTEGER NOT NULL REFERENCES friends (id) ON DELETE CASCADE,
    tag_id INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (friend_id, tag_id)
);
CREATE INDEX friend_tags_tag ON friend_tags (tag_id);

-- Custom fields carry what the privacy catalogue needs from the start: why the field is
-- collected, how sensitive it is and how long it is kept.
CREATE TABLE fields (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    type TEXT NOT NULL,                  -- text | number | date | choice
    choices TEXT NOT NULL DEFAULT '',    -- JSON array for choice fields
    purpose TEXT NOT NULL DEFAULT '',
    sensitivity TEXT NOT NULL DEFAULT 'normal', -- normal | special
    retention_days INTEGER,              -- NULL: kept while the friend is
    created_at INTEGER NOT NULL,
    UNIQUE (channel_id, key)
);

CREATE TABLE friend_fields (
    friend_id INTEGER NOT NULL REFERENCES friends (id) ON DELETE CASCADE,
    field_id INTEGER NOT NULL REFERENCES fields (id) ON DELETE CASCADE,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (friend_id, field_id)
);
CREATE INDEX friend_fields_field ON friend_fields (field_id, value);

-- The conversation log: what friends sent (and, later, what staff answered).
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    friend_id INTEGER NOT NULL REFERENCES friends (id) ON DELETE CASCADE,
    direction TEXT NOT NULL,             -- in | out
    kind TEXT NOT NULL,                  -- text | sticker | image | video | audio | file | location | postback | other
    text TEXT NOT NULL DEFAULT '',
    sticker_package_id TEXT NOT NULL DEFAULT '',
    sticker_id TEXT NOT NULL DEFAULT '',
    line_message_id TEXT NOT NULL DEFAULT '', -- to fetch image/video/audio/file content on demand
    postback_data TEXT NOT NULL DEFAULT '',
    postback_params TEXT NOT NULL DEFAULT '', -- JSON (date/time pickers, rich menu switch)
    event_id TEXT,                       -- webhookEventId of an inbound message
    occurred_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX messages_event ON messages (channel_id, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX messages_friend ON messages (friend_id, occurred_at);
