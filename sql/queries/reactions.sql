-- name: InsertMessageReactions :exec
-- InsertMessageReactions records reaction events; a replay is a no-op.
INSERT INTO chat.message_reactions (room_id, event_seq, target_seq, user_id, emoji, op, at)
SELECT unnest(@room_ids::uuid[]), unnest(@event_seqs::bigint[]), unnest(@target_seqs::bigint[]),
       unnest(@user_ids::uuid[]), unnest(@emojis::text[]), unnest(@ops::text[]), unnest(@ats::timestamptz[])
ON CONFLICT (room_id, event_seq) DO NOTHING;

-- name: MessageOverlay :many
-- MessageOverlay is what reads put on a room's messages lo..hi, in one
-- statement: rows of src 'edit' carry the current state of an edited or
-- deleted message (as MessageStates), rows of src 'reaction' one current
-- reaction (as MessageReactions).
SELECT e.target_seq, 'edit'::text AS src,
       min(e.at) FILTER (WHERE e.kind = 'delete') AS deleted_at,
       max(e.at) FILTER (WHERE e.kind = 'edit') AS edited_at,
       COALESCE((array_agg(e.body ORDER BY e.event_seq DESC) FILTER (WHERE e.kind = 'edit'))[1], '')::text AS body,
       0::bigint AS event_seq, ''::text AS user_id, ''::text AS emoji
FROM chat.message_edits e
WHERE e.room_id = @room_id AND e.target_seq BETWEEN @lo::bigint AND @hi::bigint
GROUP BY e.target_seq
UNION ALL
SELECT w.target_seq, 'reaction'::text, NULL::timestamptz, NULL::timestamptz, ''::text,
       w.event_seq, w.user_id::text, w.emoji
FROM (
    SELECT DISTINCT ON (r.target_seq, r.user_id, r.emoji) r.target_seq, r.event_seq, r.user_id, r.emoji, r.op
    FROM chat.message_reactions r
    WHERE r.room_id = @room_id AND r.target_seq BETWEEN @lo::bigint AND @hi::bigint
    ORDER BY r.target_seq, r.user_id, r.emoji, r.event_seq DESC
) w
WHERE w.op = 'add';
