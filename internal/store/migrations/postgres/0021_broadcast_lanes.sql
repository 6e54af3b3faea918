-- A broadcast of the same content to many friends is written into the outbox by
-- several expanders at once (PostgreSQL), each through a range of friend IDs of its own:
-- a lane. One expander kept one server process busy while the other CPU idled (a
-- million friends took 18-19 s on the 2-CPU machine, against LINE's 10 s). Each lane
-- keeps the cursor the broadcast row kept: after a crash its expansion resumes there.
-- A broadcast is done when all its lanes are.
CREATE TABLE broadcast_lanes (
    broadcast_id BIGINT NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    lane INTEGER NOT NULL,
    after_id BIGINT NOT NULL,             -- the lane's friends up to this ID are in the outbox
    last_id BIGINT,                       -- the lane's last friend ID; NULL: no end (the last lane)
    done BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (broadcast_id, lane)
);
INSERT INTO broadcast_lanes (broadcast_id, lane, after_id)
    SELECT id, 0, cursor_friend_id FROM broadcasts WHERE state = 'sending';
ALTER TABLE broadcasts DROP COLUMN cursor_friend_id;
