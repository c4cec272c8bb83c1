-- Replies and reactions (issue 12).
--
-- reply_to: the seq of an earlier message of the same room that a message
-- answers (NULL: none). The send script checks it is below the new seq.
ALTER TABLE chat.messages ADD COLUMN reply_to bigint;

-- A reaction change is itself a message in the room's sequence (kind
-- 'reaction', body {"target_seq": N, "emoji": "...", "op": "add"|"remove"}).
-- chat.message_reactions keeps one row per such event, keyed by the event's
-- seq like chat.message_edits: written by the api right after the event is
-- sequenced and again (idempotently) when the event message is persisted.
-- The current reactions of a message are folded from its rows: for each
-- (user, emoji) the row with the highest event_seq wins, so the result does
-- not depend on the order or the number of times rows were written.
CREATE TABLE chat.message_reactions (
    room_id    uuid NOT NULL,
    event_seq  bigint NOT NULL,
    target_seq bigint NOT NULL,
    user_id    uuid NOT NULL,
    emoji      text NOT NULL CHECK (octet_length(emoji) BETWEEN 1 AND 32),
    op         text NOT NULL CHECK (op IN ('add', 'remove')),
    at         timestamptz NOT NULL,
    PRIMARY KEY (room_id, event_seq),
    CHECK (target_seq < event_seq)
);
-- the fold reads a page's targets and picks the newest row per (user, emoji)
CREATE INDEX message_reactions_target ON chat.message_reactions (room_id, target_seq, user_id, emoji, event_seq DESC);
