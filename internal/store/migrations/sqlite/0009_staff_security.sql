-- Staff sign-in security: passwords (Argon2id, PHC strings in staff.password_hash), TOTP
-- two-factor with recovery codes, throttling and temporary lockout, a login history with
-- suspicious sign-ins flagged, and sessions that can be listed and ended one by one.

-- must_change_password is set on evidence of compromise (an admin's action, or a sign-in
-- that succeeded right after a burst of failures); never on a schedule (NIST SP 800-63B).
ALTER TABLE staff ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE staff ADD COLUMN password_changed_at INTEGER;
-- The TOTP secret, sealed under the master key. totp_last_step is the last time step
-- whose code was accepted: a code is accepted only for a strictly later step, by a
-- conditional UPDATE, so the same code cannot pass twice, even in two racing requests.
ALTER TABLE staff ADD COLUMN totp_secret BLOB;
ALTER TABLE staff ADD COLUMN totp_enabled_at INTEGER;
ALTER TABLE staff ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
-- A secret being set up: it replaces totp_secret only once a code from it is confirmed.
ALTER TABLE staff ADD COLUMN totp_pending_secret BLOB;
ALTER TABLE staff ADD COLUMN totp_pending_at INTEGER;

-- public_id names a session in lists and links without being able to sign in with it.
ALTER TABLE staff_sessions ADD COLUMN public_id TEXT;
UPDATE staff_sessions SET public_id = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX staff_sessions_public_id ON staff_sessions (public_id);
ALTER TABLE staff_sessions ADD COLUMN factor TEXT NOT NULL DEFAULT '';     -- password | link | totp | recovery
ALTER TABLE staff_sessions ADD COLUMN mfa INTEGER NOT NULL DEFAULT 0;      -- a second factor was proven
-- '' (full use) | change_password | enrol_totp: a session the console limits to that page.
ALTER TABLE staff_sessions ADD COLUMN restriction TEXT NOT NULL DEFAULT '';
-- When the person last proved who they are in this session (sign-in or re-authentication).
ALTER TABLE staff_sessions ADD COLUMN authenticated_at INTEGER;

-- One-time recovery codes: shown once, only their SHA-256 stored (80 random bits each,
-- so a fast hash is enough), each usable once.
CREATE TABLE staff_recovery_codes (
    staff_id INTEGER NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    used_at INTEGER,
    PRIMARY KEY (staff_id, code_hash)
);

-- A sign-in whose first factor passed and that waits for the second: short-lived, single
-- use, a few code attempts at most. Only the token's hash is stored.
CREATE TABLE staff_pending_signins (
    token_hash BLOB PRIMARY KEY,
    staff_id INTEGER NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    first_factor TEXT NOT NULL,               -- password | link
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    client_addr TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);

-- Every sign-in attempt. login is filled only when it names a member: what someone typed
-- for an unknown login may be a password typed in the wrong box, so only its hash
-- (login_key) is kept, which is also what lockout counts by. addr_key is the address
-- (an IPv6 address cut to its /64) that throttling counts by.
CREATE TABLE staff_login_attempts (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    action TEXT NOT NULL,                     -- sign_in | second_factor | reauth | change_password
    login TEXT NOT NULL DEFAULT '',
    login_key TEXT NOT NULL,
    staff_id INTEGER REFERENCES staff (id) ON DELETE SET NULL,
    client_addr TEXT NOT NULL DEFAULT '',
    addr_key TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,                    -- success | bad_credentials | locked | throttled | bad_code | recovery_used | second_factor_required | disabled
    factor TEXT NOT NULL DEFAULT ''           -- password | totp | recovery | link
);
CREATE INDEX staff_login_attempts_login ON staff_login_attempts (login_key, at);
CREATE INDEX staff_login_attempts_addr ON staff_login_attempts (addr_key, at);
CREATE INDEX staff_login_attempts_staff ON staff_login_attempts (staff_id, id);

-- A login locked after a burst of failures. strikes counts locks in a row: each one lasts
-- longer, up to a ceiling; a success clears the row.
CREATE TABLE staff_login_locks (
    login_key TEXT PRIMARY KEY,
    locked_until INTEGER NOT NULL,
    strikes INTEGER NOT NULL
);

-- Suspicious sign-ins, kept until an owner has looked (acknowledged) and beyond.
CREATE TABLE staff_security_flags (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                       -- new_device | account_failures | address_failures | success_after_failures
    at INTEGER NOT NULL,
    staff_id INTEGER REFERENCES staff (id) ON DELETE SET NULL,
    login TEXT NOT NULL DEFAULT '',
    client_addr TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    acknowledged_at INTEGER,
    acknowledged_by INTEGER REFERENCES staff (id) ON DELETE SET NULL
);
CREATE INDEX staff_security_flags_staff ON staff_security_flags (staff_id, id);
