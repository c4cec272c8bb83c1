-- Bounded contexts each get a schema, as the services of the original system did.
CREATE SCHEMA IF NOT EXISTS auth;
CREATE SCHEMA IF NOT EXISTS chat;
CREATE SCHEMA IF NOT EXISTS customer;

CREATE TABLE auth.users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active')),
    role          text NOT NULL DEFAULT 'user',
    created_at    timestamptz NOT NULL DEFAULT now(),
    activated_at  timestamptz
);

CREATE TABLE chat.profiles (
    user_id        uuid PRIMARY KEY,
    username       text NOT NULL UNIQUE,
    display_name   text NOT NULL,
    status_message text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX profiles_username_prefix ON chat.profiles (username text_pattern_ops);
CREATE INDEX profiles_display_prefix ON chat.profiles (lower(display_name) text_pattern_ops);

CREATE TABLE chat.friends (
    user_id    uuid NOT NULL REFERENCES chat.profiles (user_id) ON DELETE CASCADE,
    friend_id  uuid NOT NULL REFERENCES chat.profiles (user_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE chat.rooms (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    created_by      uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- last persisted seq; the live counter is in Redis and may be ahead by one batch.
    last_seq        bigint NOT NULL DEFAULT 0,
    last_message_at timestamptz
);

CREATE TABLE chat.members (
    room_id       uuid NOT NULL REFERENCES chat.rooms (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES chat.profiles (user_id) ON DELETE CASCADE,
    joined_at     timestamptz NOT NULL DEFAULT now(),
    last_read_seq bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX members_user ON chat.members (user_id);

CREATE TABLE chat.messages (
    id            uuid NOT NULL,
    room_id       uuid NOT NULL,
    seq           bigint NOT NULL,
    sender_id     uuid NOT NULL,
    client_msg_id text NOT NULL,
    body          text NOT NULL,
    sent_at       timestamptz NOT NULL,
    PRIMARY KEY (room_id, seq),
    -- the dedupe key: a retried send never becomes a second row
    UNIQUE (room_id, sender_id, client_msg_id)
);

CREATE TABLE customer.accounts (
    user_id    uuid PRIMARY KEY,
    balance    bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customer.transactions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES customer.accounts (user_id) ON DELETE CASCADE,
    amount          bigint NOT NULL,
    balance_after   bigint NOT NULL,
    kind            text NOT NULL,
    idempotency_key text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX transactions_user_created ON customer.transactions (user_id, created_at DESC, id DESC);
