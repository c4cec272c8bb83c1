-- Edits and deletes of messages (issue 12). An edit or delete is itself a
-- message in the room's sequence (kind 'edit' / 'delete', body
-- {"target_seq": N, "body": "..."}), so live members and syncing clients
-- learn of it in order. chat.message_edits keeps one row per such event,
-- keyed by the event's seq: it is written by the api right after the event
-- is sequenced and again (idempotently) when the event message is
-- persisted, and it does not need the target row to exist, so an edit of a
-- message still only in the Redis log is never lost. The current state of
-- a message is computed from its events (a delete wins over any edit; the
-- newest edit gives the body), which makes applying them order-free and
-- safe to repeat; it is copied onto chat.messages whenever the target or
-- one of its events is written, and history overlays it on every read.
ALTER TABLE chat.messages
    ADD COLUMN edited_at  timestamptz,
    ADD COLUMN deleted_at timestamptz;

CREATE TABLE chat.message_edits (
    room_id    uuid NOT NULL,
    event_seq  bigint NOT NULL,
    target_seq bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('edit', 'delete')),
    body       text NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (room_id, event_seq),
    CHECK (target_seq < event_seq)
);
CREATE INDEX message_edits_target ON chat.message_edits (room_id, target_seq);
