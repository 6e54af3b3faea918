-- Who may do what. Built-in roles (owner, admin, operator, analyst) live in code; custom
-- roles are sets of resource:action permissions made by an owner or admin.
CREATE TABLE roles (
    name TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    permissions TEXT NOT NULL,            -- space-separated resource:action
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Whether a role must sign in with a second factor. Owners and admins always must; for
-- other roles (built-in or custom) it is a choice recorded here.
CREATE TABLE role_policies (
    role TEXT PRIMARY KEY,
    require_totp BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

-- The LINE accounts (channels) a staff member works on. Owners work on every account.
CREATE TABLE staff_channels (
    staff_id BIGINT NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    PRIMARY KEY (staff_id, channel_id)
);
CREATE INDEX staff_channels_channel ON staff_channels (channel_id);
