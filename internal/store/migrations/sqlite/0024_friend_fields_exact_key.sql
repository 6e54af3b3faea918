-- The keyed hash (blind index) of each value in its NormalizeExact form, under a key
-- derived from the master key: an exact search (the phone number or email address a
-- customer reads out) finds the friend through an index instead of normalising every
-- value of the channel, and the index holds no value in the clear. NULL: written before
-- this column; the server fills those in when it starts (friend.FillExactKeys), and
-- searches the old way until it has.
ALTER TABLE friend_fields ADD COLUMN exact_key TEXT;
CREATE INDEX friend_fields_exact ON friend_fields (exact_key) WHERE exact_key IS NOT NULL;
CREATE INDEX friend_fields_unkeyed ON friend_fields (friend_id, field_id) WHERE exact_key IS NULL;
