-- Saved segments: a filter kept under a key, so that broadcasts, coupons and setup files
-- can name the same audience. Message templates by key live in `templates` (0003).

CREATE TABLE segments (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    filter TEXT NOT NULL,                 -- JSON: segment.Filter, as written (resolved again at each use)
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (channel_id, key)
);
