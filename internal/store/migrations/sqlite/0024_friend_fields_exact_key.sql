-- The keyed hash (blind index) of each value in its NormalizeExact form, under a key
-- derived from the master key: an exact search (the phone number or email address a
-- customer reads out) finds the friend through an index instead of normalising every
-- value of the channel, and the index holds no value in the clear. norm_value is the
-- value in that normalised form, which a search by a part of a value (staff who may read
-- personal data) compares instead of normalising every value in SQL. NULL: written
-- before these columns; the server fills them in when it starts (friend.FillExactKeys),
-- and searches the old way until it has.
ALTER TABLE friend_fields ADD COLUMN exact_key TEXT;
ALTER TABLE friend_fields ADD COLUMN norm_value TEXT;
CREATE INDEX friend_fields_exact ON friend_fields (exact_key) WHERE exact_key IS NOT NULL;
CREATE INDEX friend_fields_unkeyed ON friend_fields (friend_id, field_id) WHERE exact_key IS NULL;
