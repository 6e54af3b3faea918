-- A delivery handed to a batch is no longer rewritten as 'sent' when its batch is: it
-- stays 'sending' in its own row and reads as sent through its batch (delivery.StateSQL).
-- Rows written 'sent' before this read the same. What a channel sent in a period is now
-- summed over its sent batches (their size is their member count).
CREATE INDEX batches_sent ON batches (channel_id, sent_at) WHERE state = 'sent';

-- A delivery's channel is its friend's, and deleting a channel deletes its friends and,
-- through them, their deliveries: the channel reference checked nothing the friend
-- reference does not, and cost PostgreSQL a trigger call and a row lock per delivery
-- written (a tenth of writing a broadcast's deliveries). SQLite cannot drop a
-- constraint without rebuilding the table; its check is a cheap in-process lookup.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_channel_id_fkey;
