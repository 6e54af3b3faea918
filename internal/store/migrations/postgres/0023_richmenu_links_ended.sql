-- A rich menu link holds a friend's LINE user ID and which menu they were shown; one
-- that ended is kept as long as what the channel sent (delivery_retention_days). What
-- the retention job looks through, oldest first.
CREATE INDEX richmenu_links_ended ON richmenu_links (channel_id, updated_at) WHERE state <> 'pending';
