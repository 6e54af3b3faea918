-- Coupons: what a shop offers, the code each friend was given (at most one issue per
-- friend and coupon), the pool of unique codes, and every redemption, counted once.

CREATE TABLE coupons (
    id INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    code_policy TEXT NOT NULL,            -- shared | generated | imported
    shared_code TEXT NOT NULL DEFAULT '', -- the one code of a shared coupon
    valid_from INTEGER NOT NULL,
    valid_until INTEGER,                  -- exclusive; NULL: no end
    per_friend_limit INTEGER NOT NULL DEFAULT 1,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (channel_id, key)
);

-- Unique codes of generated and imported coupons. An imported code is free until
-- assigned_at is set; a generated one is written when it is issued. The unique key is
-- what keeps two friends from sharing a code. A deleted friend's code stays assigned
-- (friend_id NULL): it was sent once and must not go to anyone else.
CREATE TABLE coupon_codes (
    id INTEGER PRIMARY KEY,
    coupon_id INTEGER NOT NULL REFERENCES coupons (id) ON DELETE CASCADE,
    code TEXT NOT NULL,
    friend_id INTEGER REFERENCES friends (id) ON DELETE SET NULL,
    assigned_at INTEGER,                  -- NULL: free (imported, not yet issued)
    created_at INTEGER NOT NULL,
    UNIQUE (coupon_id, code)
);
CREATE INDEX coupon_codes_free ON coupon_codes (coupon_id, id) WHERE assigned_at IS NULL;
CREATE INDEX coupon_codes_friend ON coupon_codes (friend_id);

-- One row per friend and coupon: issuing again returns the same code.
CREATE TABLE coupon_issues (
    id INTEGER PRIMARY KEY,
    coupon_id INTEGER NOT NULL REFERENCES coupons (id) ON DELETE CASCADE,
    friend_id INTEGER NOT NULL REFERENCES friends (id) ON DELETE CASCADE,
    code TEXT NOT NULL,
    redeemed INTEGER NOT NULL DEFAULT 0,  -- redemptions so far, checked against per_friend_limit
    issued_at INTEGER NOT NULL,
    UNIQUE (coupon_id, friend_id)
);
CREATE INDEX coupon_issues_friend ON coupon_issues (friend_id);

-- A redemption at the till or by postback. The redemption key (a staff click's request
-- key, "postback:" + webhookEventId) makes a retry return the first one.
CREATE TABLE coupon_redemptions (
    id INTEGER PRIMARY KEY,
    coupon_id INTEGER NOT NULL REFERENCES coupons (id) ON DELETE CASCADE,
    friend_id INTEGER NOT NULL REFERENCES friends (id) ON DELETE CASCADE,
    redemption_key TEXT NOT NULL,
    redeemed_by TEXT NOT NULL,            -- staff:<id> | postback
    use_number INTEGER NOT NULL DEFAULT 0, -- the friend's 1st, 2nd, ... use of the coupon
    redeemed_at INTEGER NOT NULL,
    UNIQUE (coupon_id, redemption_key)
);
CREATE INDEX coupon_redemptions_friend ON coupon_redemptions (friend_id);
