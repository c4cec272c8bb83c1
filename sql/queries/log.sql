-- Queries of the message log's persistence: watermarks, tombstones, dead
-- letters and the Kafka outbox.

-- name: AdvancePersisted :many
-- AdvancePersisted moves each room's watermark to the top of the contiguous
-- run of stored seqs above it. Rows are locked in id order first, so
-- concurrent batches touching the same rooms never deadlock.
WITH locked AS (
    SELECT r.id FROM chat.rooms r WHERE r.id = ANY(@room_ids::uuid[]) ORDER BY r.id FOR UPDATE
)
UPDATE chat.rooms r
SET persisted_seq = GREATEST(r.persisted_seq, coalesce((
        SELECT max(t.seq) FROM (
            SELECT m.seq, m.seq - row_number() OVER (ORDER BY m.seq) AS d
            FROM chat.messages m WHERE m.room_id = r.id AND m.seq > r.persisted_seq
        ) t WHERE t.d = r.persisted_seq), 0))
FROM locked WHERE r.id = locked.id
RETURNING r.id, r.persisted_seq;

-- name: StoredSeqs :many
-- StoredSeqs lists which seqs of lo..hi Postgres holds.
SELECT seq FROM chat.messages WHERE room_id = @room_id AND seq BETWEEN @lo::bigint AND @hi::bigint ORDER BY seq;

-- name: InsertTombstones :execrows
-- InsertTombstones marks seqs that can never be delivered, so readers never
-- wait on a hole; a message that turns up later replaces its tombstone.
INSERT INTO chat.messages (id, room_id, seq, sender_id, client_msg_id, body, sent_at, kind)
SELECT unnest(@ids::uuid[]), @room_id::uuid, s, '00000000-0000-0000-0000-000000000000'::uuid,
       'gap:' || s::text, '', now(), 'gap'
FROM unnest(@seqs::bigint[]) AS s
ON CONFLICT DO NOTHING;

-- name: InsertDeadLetter :execrows
INSERT INTO chat.dead_letters (room_id, seq, message_id, payload, reason)
VALUES (@room_id, @seq, @message_id, @payload, @reason)
ON CONFLICT DO NOTHING;

-- name: RoomsToPublish :many
-- RoomsToPublish finds rooms whose persisted messages are not all in Kafka yet.
SELECT r.id, coalesce(c.published_seq, 0)::bigint AS published_seq, r.persisted_seq
FROM chat.rooms r LEFT JOIN chat.publish_cursors c ON c.room_id = r.id
WHERE r.persisted_seq > coalesce(c.published_seq, 0)
  AND (cardinality(@room_ids::uuid[]) = 0 OR r.id = ANY(@room_ids::uuid[]))
ORDER BY r.id LIMIT @lim;

-- name: EnsurePublishCursors :exec
INSERT INTO chat.publish_cursors (room_id) SELECT unnest(@room_ids::uuid[]) ON CONFLICT DO NOTHING;

-- name: LockPublishCursors :many
-- LockPublishCursors claims, for the transaction, the Kafka cursors of the
-- given rooms that are behind their watermark; rooms another worker is
-- publishing are skipped. Locked in id order, so workers never deadlock.
SELECT c.room_id, c.published_seq, r.persisted_seq
FROM chat.publish_cursors c JOIN chat.rooms r ON r.id = c.room_id
WHERE c.room_id = ANY(@room_ids::uuid[]) AND r.persisted_seq > c.published_seq
ORDER BY c.room_id
FOR UPDATE OF c SKIP LOCKED;

-- name: MessagesInRanges :many
-- MessagesInRanges reads several rooms' seq ranges in one statement.
SELECT m.* FROM chat.messages m
JOIN (SELECT unnest(@room_ids::uuid[]) AS room_id, unnest(@los::bigint[]) AS lo, unnest(@his::bigint[]) AS hi) v
  ON m.room_id = v.room_id AND m.seq BETWEEN v.lo AND v.hi
ORDER BY m.room_id, m.seq;

-- name: SetPublishedMany :exec
UPDATE chat.publish_cursors c SET published_seq = GREATEST(c.published_seq, v.seq)
FROM (SELECT unnest(@room_ids::uuid[]) AS room_id, unnest(@seqs::bigint[]) AS seq) v
WHERE c.room_id = v.room_id;

-- name: CountDeadLetters :one
SELECT count(*) FROM chat.dead_letters WHERE room_id = @room_id;

-- name: TombstoneResends :execrows
-- TombstoneResends handles messages of a batch that were not stored because
-- their (room, sender, client_msg_id) is already stored under another seq (a
-- resend after the dedupe key expired): their own seq becomes a tombstone,
-- so it is not a hole that holds the watermark back for good.
INSERT INTO chat.messages (id, room_id, seq, sender_id, client_msg_id, body, sent_at, kind)
SELECT v.tid, v.room_id, v.seq, '00000000-0000-0000-0000-000000000000'::uuid, 'gap:' || v.seq::text, '', now(), 'gap'
FROM (SELECT unnest(@tids::uuid[]) AS tid, unnest(@room_ids::uuid[]) AS room_id, unnest(@seqs::bigint[]) AS seq,
             unnest(@sender_ids::uuid[]) AS sender_id, unnest(@client_msg_ids::text[]) AS client_msg_id) v
WHERE NOT EXISTS (SELECT 1 FROM chat.messages m WHERE m.room_id = v.room_id AND m.seq = v.seq)
  AND EXISTS (SELECT 1 FROM chat.messages m WHERE m.room_id = v.room_id AND m.sender_id = v.sender_id
                                              AND m.client_msg_id = v.client_msg_id)
ON CONFLICT DO NOTHING;
