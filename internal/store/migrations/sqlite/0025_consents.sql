-- A friend's consent to the keeping of a special care-required field (要配慮個人情報,
-- APPI art. 20(2)): every grant and withdrawal is a row, how it was given with it; the
-- newest says where it stands. A value of such a field is only set while it is granted.
CREATE TABLE consents (
    id INTEGER PRIMARY KEY,
    friend_id INTEGER NOT NULL REFERENCES friends (id) ON DELETE CASCADE,
    field_id INTEGER NOT NULL REFERENCES fields (id) ON DELETE CASCADE,
    granted INTEGER NOT NULL,
    source TEXT NOT NULL,               -- postback | staff | api
    evidence TEXT NOT NULL DEFAULT '',  -- the postback's event, the staff member or token, how they asked; never the value
    at INTEGER NOT NULL
);
CREATE INDEX consents_friend ON consents (friend_id, field_id, id);
