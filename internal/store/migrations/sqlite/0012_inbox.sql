-- The 1:1 chat inbox: one conversation per friend, holding what staff work it by (status,
-- assignee, unread count), and on the conversation log, who on the staff wrote an
-- outbound message and the reply token an inbound one came with.

-- friend_id is the key: a friend belongs to one channel, and has one conversation with
-- it. The row is created by the friend's first message (or a staff reply).
CREATE TABLE conversations (
    friend_id INTEGER PRIMARY KEY REFERENCES friends (id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    status TEXT NOT NULL,                       -- open | pending | resolved
    status_at INTEGER NOT NULL,                 -- when status last changed
    assignee_id INTEGER REFERENCES staff (id) ON DELETE SET NULL,
    unread INTEGER NOT NULL DEFAULT 0,          -- friend's messages since staff last read
    counted_message_id INTEGER NOT NULL DEFAULT 0, -- newest inbound message counted: a message applied again is not counted twice
    last_inbound_at INTEGER,                    -- newest message from the friend
    last_activity_at INTEGER NOT NULL,          -- newest message either way: the inbox order
    preview_direction TEXT NOT NULL DEFAULT '', -- of the newest message: in | out
    preview_kind TEXT NOT NULL DEFAULT '',
    preview_text TEXT NOT NULL DEFAULT '',      -- its first characters
    read_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX conversations_activity ON conversations (channel_id, last_activity_at DESC, friend_id DESC);
CREATE INDEX conversations_status ON conversations (channel_id, status, last_activity_at DESC, friend_id DESC);
CREATE INDEX conversations_assignee ON conversations (assignee_id, last_activity_at DESC) WHERE assignee_id IS NOT NULL;

-- staff_id: the staff member who wrote an outbound message (NULL: sent through the API,
-- or inbound). delivery_id: the outbox row that sends it (no foreign key: the outbox
-- may be pruned, the log stays). reply_token: what an inbound message came with, so a
-- staff reply within the minute can use it once.
ALTER TABLE messages ADD COLUMN staff_id INTEGER REFERENCES staff (id) ON DELETE SET NULL;
ALTER TABLE messages ADD COLUMN delivery_id INTEGER;
ALTER TABLE messages ADD COLUMN reply_token TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN reply_expires_at INTEGER;
CREATE INDEX messages_reply_token ON messages (friend_id, reply_expires_at) WHERE reply_token <> '';
CREATE INDEX messages_staff ON messages (staff_id) WHERE staff_id IS NOT NULL;
