-- name: InsertMessageEdits :exec
-- InsertMessageEdits records edit/delete events; a replay is a no-op.
INSERT INTO chat.message_edits (room_id, event_seq, target_seq, kind, body, at)
SELECT unnest(@room_ids::uuid[]), unnest(@event_seqs::bigint[]), unnest(@target_seqs::bigint[]),
       unnest(@kinds::text[]), unnest(@bodies::text[]), unnest(@ats::timestamptz[])
ON CONFLICT (room_id, event_seq) DO NOTHING;

-- name: ClearEditedBodies :exec
-- ClearEditedBodies forgets the edited texts of deleted messages.
UPDATE chat.message_edits e SET body = ''
WHERE e.kind = 'edit' AND e.body <> ''
  AND (e.room_id, e.target_seq) IN (
    SELECT d.room_id, d.target_seq FROM chat.message_edits d
    WHERE d.kind = 'delete' AND d.room_id = ANY(@room_ids::uuid[]) AND d.target_seq = ANY(@seqs::bigint[]));

-- name: ApplyMessageEdits :exec
-- ApplyMessageEdits copies the current state computed from the events onto
-- the given (room, seq) rows that exist; recomputed from all events each
-- time, so it is idempotent and independent of the order of arrival.
UPDATE chat.messages m
SET body = CASE WHEN s.deleted_at IS NOT NULL THEN '' ELSE COALESCE(s.body, m.body) END,
    edited_at = s.edited_at, deleted_at = s.deleted_at
FROM (
    SELECT e.room_id, e.target_seq,
           min(e.at) FILTER (WHERE e.kind = 'delete') AS deleted_at,
           max(e.at) FILTER (WHERE e.kind = 'edit') AS edited_at,
           (array_agg(e.body ORDER BY e.event_seq DESC) FILTER (WHERE e.kind = 'edit'))[1]::text AS body
    FROM chat.message_edits e
    JOIN (SELECT unnest(@room_ids::uuid[]) AS room_id, unnest(@seqs::bigint[]) AS seq) t
      ON e.room_id = t.room_id AND e.target_seq = t.seq
    GROUP BY e.room_id, e.target_seq
) s
WHERE m.room_id = s.room_id AND m.seq = s.target_seq AND m.kind = 'text';
