-- Delivery speed (issue #3). Identical content for many friends (a broadcast, a scenario
-- step many friends reach at once) is written straight into its multicast batches when
-- it is queued: a batch starts 'queued' (state), its deliveries start 'sending' with
-- their batch_id, and a dispatcher claims the batch whole. Each recipient then costs two
-- row writes (queued, then sent) instead of three, and neither moves an index entry.

-- What a batch was made for, so that cancelling a broadcast finds its queued batches.
ALTER TABLE batches ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE batches ADD COLUMN source_id INTEGER NOT NULL DEFAULT 0;
CREATE INDEX batches_queued ON batches (id) WHERE state = 'queued';
CREATE INDEX batches_source ON batches (source, source_id) WHERE state = 'queued';

-- A friend's deliveries by friend alone: with the state in the key, every change of
-- state moved the row's index entry (two more B-tree writes per recipient per step).
DROP INDEX deliveries_friend;
CREATE INDEX deliveries_friend ON deliveries (friend_id, id);

-- A broadcast expands a channel's friends in ID order, a page at a time. Without this,
-- SQLite read every friend of the channel through (channel_id, line_user_id) and sorted
-- them, on every page: quadratic in the channel's size.
CREATE INDEX friends_channel ON friends (channel_id, id);
