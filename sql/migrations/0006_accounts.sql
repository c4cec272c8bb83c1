-- Accounts and the social graph (issue 11): disabled and deleted accounts,
-- login and last-seen times, mutual friendships through requests, a ledger
-- ordered by a per-account entry number, withdrawals, transfers and
-- account deletions as sagas.

-- auth.users: an admin may disable an account; an account being deleted
-- is 'deleting' until its saga removes the row.
ALTER TABLE auth.users DROP CONSTRAINT IF EXISTS users_status_check;
ALTER TABLE auth.users ADD CONSTRAINT users_status_check
    CHECK (status IN ('pending', 'active', 'disabled', 'deleting'));
ALTER TABLE auth.users
    ADD COLUMN last_login_at       timestamptz,
    ADD COLUMN last_seen_at        timestamptz,
    ADD COLUMN password_changed_at timestamptz,
    ADD COLUMN disabled_at         timestamptz;
CREATE INDEX users_created ON auth.users (created_at DESC, id DESC);

-- chat.profiles: a deleted user's profile stays (their messages keep a
-- sender) but is anonymized; deleted_at marks it.
ALTER TABLE chat.profiles ADD COLUMN deleted_at timestamptz;

-- Friendship is mutual: chat.friends holds both directions of every
-- friendship; chat.friend_requests the pending ones (from asks to).
CREATE TABLE chat.friend_requests (
    from_id    uuid NOT NULL REFERENCES chat.profiles (user_id) ON DELETE CASCADE,
    to_id      uuid NOT NULL REFERENCES chat.profiles (user_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (from_id, to_id),
    CHECK (from_id <> to_id)
);
CREATE INDEX friend_requests_to ON chat.friend_requests (to_id, created_at DESC);

-- One-way friendships from before become requests: A listing B was A's
-- consent, not B's. Pairs listed both ways stay friends.
DELETE FROM chat.friends WHERE user_id = friend_id;
INSERT INTO chat.friend_requests (from_id, to_id, created_at)
SELECT f.user_id, f.friend_id, f.created_at FROM chat.friends f
WHERE NOT EXISTS (SELECT 1 FROM chat.friends r WHERE r.user_id = f.friend_id AND r.friend_id = f.user_id)
ON CONFLICT DO NOTHING;
DELETE FROM chat.friends f
WHERE NOT EXISTS (SELECT 1 FROM chat.friends r WHERE r.user_id = f.friend_id AND r.friend_id = f.user_id);

-- The ledger: every entry of an account gets the next number of that
-- account (assigned under the account's row lock), so entry order always
-- agrees with balance_after. Entries from before are numbered in the
-- order of their balances where that is unambiguous: deposits only ever
-- raised a balance, so balance_after orders them.
ALTER TABLE customer.accounts
    ADD COLUMN last_entry bigint NOT NULL DEFAULT 0,
    ADD COLUMN closed_at  timestamptz;
ALTER TABLE customer.transactions
    ADD COLUMN entry           bigint,
    ADD COLUMN counterparty_id uuid,
    ADD COLUMN transfer_id     uuid,
    ADD COLUMN memo            text NOT NULL DEFAULT '';
UPDATE customer.transactions t SET entry = n.e
FROM (SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY balance_after, created_at, id) AS e
      FROM customer.transactions) n
WHERE t.id = n.id;
UPDATE customer.accounts a SET last_entry = coalesce((SELECT max(entry) FROM customer.transactions t WHERE t.user_id = a.user_id), 0);
ALTER TABLE customer.transactions ALTER COLUMN entry SET NOT NULL;
ALTER TABLE customer.transactions ADD CONSTRAINT transactions_user_entry UNIQUE (user_id, entry);
ALTER TABLE customer.transactions ADD CONSTRAINT transactions_kind_check
    CHECK (kind IN ('deposit', 'withdrawal', 'transfer_out', 'transfer_in', 'transfer_refund'));
DROP INDEX IF EXISTS customer.transactions_user_created;

-- A transfer between two members of a room, run by the transfer saga.
-- The sender's idempotency key names it; status moves pending → completed,
-- or pending → failed (nothing moved) / compensated (refunded).
CREATE TABLE customer.transfers (
    id              uuid PRIMARY KEY,
    from_id         uuid NOT NULL,
    to_id           uuid NOT NULL,
    room_id         uuid NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    memo            text NOT NULL DEFAULT '',
    idempotency_key text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'completed', 'failed', 'compensated')),
    error_code      text NOT NULL DEFAULT '',
    error           text NOT NULL DEFAULT '',
    message_seq     bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (from_id, idempotency_key),
    CHECK (from_id <> to_id)
);
CREATE INDEX transfers_to ON customer.transfers (to_id, created_at DESC);

-- An account deletion, run by the deletion saga; the row outlives the
-- user so that its status stays readable.
CREATE TABLE auth.deletions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL,
    username    text NOT NULL,
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
    step        text NOT NULL DEFAULT '',
    error_code  text NOT NULL DEFAULT '',
    error       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE UNIQUE INDEX deletions_one_running ON auth.deletions (user_id) WHERE status = 'running';
