-- How long a channel keeps what it sent (the outbox: deliveries and their calls, which
-- hold LINE user IDs and personalised texts) and its conversations (what friends wrote
-- and staff answered), in days; 0 keeps them. A new channel keeps deliveries 180 days
-- and conversations two years. Channels that existed before keep everything until their
-- owner chooses: deleting history nobody asked to delete would be a surprise.
ALTER TABLE channels ADD COLUMN delivery_retention_days INTEGER NOT NULL DEFAULT 180;
ALTER TABLE channels ADD COLUMN conversation_retention_days INTEGER NOT NULL DEFAULT 730;
UPDATE channels SET delivery_retention_days = 0, conversation_retention_days = 0;

-- What the retention job looks through, oldest first: calls that ended without being
-- sent, deliveries that ended without a call, and a channel's conversation. (Sent calls
-- are found through batches_sent.)
CREATE INDEX batches_ended ON batches (channel_id, created_at) WHERE state IN ('failed', 'cancelled');
CREATE INDEX deliveries_unbatched_ended ON deliveries (channel_id, created_at)
    WHERE batch_id IS NULL AND state IN ('dropped', 'cancelled', 'failed');
CREATE INDEX messages_channel ON messages (channel_id, occurred_at);

-- The counts by state of a broadcast's deliveries that retention deleted (JSON), added
-- to those still there when its progress is shown.
ALTER TABLE broadcasts ADD COLUMN expired_counts TEXT NOT NULL DEFAULT '';
