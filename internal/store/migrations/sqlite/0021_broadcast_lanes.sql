-- A broadcast is expanded through lanes, ranges of friend IDs each with its own cursor
-- (see PostgreSQL's 0021: several expanders write one broadcast at once there). SQLite
-- has one writer, so its broadcasts have one lane, which keeps the cursor the broadcast
-- row kept.
CREATE TABLE broadcast_lanes (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    lane INTEGER NOT NULL,
    after_id INTEGER NOT NULL,            -- the lane's friends up to this ID are in the outbox
    last_id INTEGER,                      -- the lane's last friend ID; NULL: no end (the last lane)
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (broadcast_id, lane)
);
INSERT INTO broadcast_lanes (broadcast_id, lane, after_id)
    SELECT id, 0, cursor_friend_id FROM broadcasts WHERE state = 'sending';
ALTER TABLE broadcasts DROP COLUMN cursor_friend_id;
