-- A delivery handed to a batch is no longer rewritten as 'sent' when its batch is: it
-- stays 'sending' in its own row and reads as sent through its batch (delivery.StateSQL).
-- Rows written 'sent' before this read the same. What a channel sent in a period is now
-- summed over its sent batches (their size is their member count).
CREATE INDEX batches_sent ON batches (channel_id, sent_at) WHERE state = 'sent';
