-- Keyword auto-replies. A friend's text message that matches one of a rule's keywords,
-- at a time the rule's window allows, is answered with the rule's template, written to
-- the outbox in the transaction that applies the message event.

CREATE TABLE autoreplies (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    match_kind TEXT NOT NULL,             -- exact | contains | regex
    keywords TEXT NOT NULL,               -- JSON array, as written; normalised when matching
    priority INTEGER NOT NULL DEFAULT 0,  -- higher wins; ties: lower id
    window_days TEXT NOT NULL DEFAULT '', -- "mon,fri"; '' = every day
    window_from TEXT NOT NULL DEFAULT '', -- HH:MM in the channel's time zone; '' = no window (always open)
    window_to TEXT NOT NULL DEFAULT '',   -- HH:MM; before window_from: the window wraps midnight
    template TEXT NOT NULL,               -- JSON: message.Template
    enabled INTEGER NOT NULL DEFAULT 1,
    hits INTEGER NOT NULL DEFAULT 0,      -- messages answered by this rule
    last_hit_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (channel_id, key)
);
-- Matching reads a channel's enabled rules in the order they are tried.
CREATE INDEX autoreplies_match ON autoreplies (channel_id, priority DESC, id) WHERE enabled = 1;
