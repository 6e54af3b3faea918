-- Rich menus linked to friends (issue #3: a scenario step may link one). The LINE call
-- must not be made inside the step's transaction, so the step writes a row here, in that
-- transaction, and the richmenu worker makes the call after it commits: an outbox like
-- deliveries.

CREATE TABLE richmenu_links (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    friend_id INTEGER NOT NULL REFERENCES friends (id) ON DELETE CASCADE,
    line_user_id TEXT NOT NULL,
    rich_menu_id TEXT NOT NULL,             -- '' unlinks: the friend sees the default menu again
    source TEXT NOT NULL DEFAULT '',        -- what asked for it, e.g. scenario:welcome/day1
    state TEXT NOT NULL DEFAULT 'pending',  -- pending | done | failed | dropped
    version INTEGER NOT NULL DEFAULT 1,     -- counts rewrites of the pending row by newer requests
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at INTEGER NOT NULL,                -- the next attempt (later after a failure)
    lease_until INTEGER NOT NULL DEFAULT 0, -- in a worker's hands until then; a crashed worker's row is taken over after it
    last_error TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    done_at INTEGER
);
-- One pending row per friend, enforced here: a newer request rewrites it, since only the
-- latest menu matters, and one row cannot be in two workers' hands at once, so two links
-- for one friend never race at LINE.
CREATE UNIQUE INDEX richmenu_links_pending ON richmenu_links (friend_id) WHERE state = 'pending';
CREATE INDEX richmenu_links_due ON richmenu_links (due_at) WHERE state = 'pending';
CREATE INDEX richmenu_links_friend ON richmenu_links (friend_id, id);
