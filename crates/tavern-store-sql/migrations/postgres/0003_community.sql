-- The community: supporters' Ko-fi payments (kept once per Ko-fi
-- transaction, assigned to a user when the supporter is known), users'
-- e-mail addresses that match them, one-time link codes (hashed), and
-- invitations (their codes hashed).
ALTER TABLE users ADD COLUMN email TEXT;
CREATE UNIQUE INDEX users_email ON users (email) WHERE email IS NOT NULL;

CREATE TABLE link_codes (
    code_hash  TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);

CREATE TABLE payments (
    id                 TEXT PRIMARY KEY,
    message_id         TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('donation', 'subscription', 'commission', 'shop_order')),
    from_name          TEXT NOT NULL,
    email              TEXT,
    amount_cents       BIGINT NOT NULL,
    currency           TEXT NOT NULL,
    tier_name          TEXT,
    first_subscription BOOLEAN NOT NULL,
    paid_at            BIGINT NOT NULL,
    recorded_at        BIGINT NOT NULL,
    user_id            TEXT REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX payments_user ON payments (user_id, paid_at);
CREATE INDEX payments_email ON payments (email);

CREATE TABLE invites (
    id         TEXT PRIMARY KEY,
    code_hash  TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'gm')),
    tier       TEXT,
    max_uses   BIGINT NOT NULL,
    uses       BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CHECK (uses <= max_uses)
);
