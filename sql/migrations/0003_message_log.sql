-- The room's Redis stream is a write-ahead log; Postgres records how far it
-- has been persisted (contiguously) and published to Kafka.
ALTER TABLE chat.rooms ADD COLUMN persisted_seq bigint NOT NULL DEFAULT 0;

-- How far each room's messages are in Kafka (chat.messages), apart from the
-- rooms table so that publishing (slow while Kafka is down) never holds a
-- lock that persisting needs.
CREATE TABLE chat.publish_cursors (
    room_id       uuid PRIMARY KEY REFERENCES chat.rooms (id) ON DELETE CASCADE,
    published_seq bigint NOT NULL DEFAULT 0
);

-- kind: 'text' for messages users sent, 'gap' for a tombstone of a seq that
-- can never be delivered (lost by Redis or refused by Postgres), so readers
-- never wait on a hole.
ALTER TABLE chat.messages ADD COLUMN kind text NOT NULL DEFAULT 'text';

-- Rows Postgres refused, kept with the reason; their seq holds a tombstone.
CREATE TABLE chat.dead_letters (
    room_id    uuid NOT NULL,
    seq        bigint NOT NULL,
    message_id uuid NOT NULL,
    payload    bytea NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, seq)
);

-- Existing rooms: the watermark is the top of the contiguous run from seq 1;
-- everything persisted before this migration was published by its batch.
UPDATE chat.rooms r SET persisted_seq = w.top
FROM (
    SELECT r2.id, coalesce((
        SELECT max(t.seq) FROM (
            SELECT m.seq, m.seq - row_number() OVER (ORDER BY m.seq) AS d
            FROM chat.messages m WHERE m.room_id = r2.id
        ) t WHERE t.d = 0), 0) AS top
    FROM chat.rooms r2
) w WHERE r.id = w.id;
INSERT INTO chat.publish_cursors (room_id, published_seq) SELECT id, persisted_seq FROM chat.rooms;
