-- name: SearchMessages :many
-- SearchMessages is one page of the text messages matching q in the rooms
-- the user is a member of (one room when room_id is set), best rank first;
-- the page after (after_rank, after_room, after_seq) when after_rank is set.
-- The snippet is ts_headline's, on the body with < > & swapped for control
-- characters (bodies cannot hold them): its parser drops what looks like
-- HTML tags and entities, and a snippet must show the body as written.
-- kind = 'text' repeats the partial index's predicate so the index (room_id, document; migration 0013) is used.
WITH q AS (
    SELECT chat.search_query(sqlc.arg(q)::text) AS tq
), hits AS (
    SELECT m.room_id, m.seq, ts_rank(chat.search_doc(m.body), q.tq)::real AS rank
    FROM chat.messages m
    CROSS JOIN q
    JOIN chat.members mb ON mb.room_id = m.room_id AND mb.user_id = sqlc.arg(user_id)::uuid
    WHERE m.kind = 'text' AND m.body <> '' AND chat.search_doc(m.body) @@ q.tq
      AND (sqlc.narg(room_id)::uuid IS NULL OR m.room_id = sqlc.narg(room_id)::uuid)
), page AS (
    SELECT h.room_id, h.seq, h.rank FROM hits h
    WHERE sqlc.narg(after_rank)::real IS NULL
       OR h.rank < sqlc.narg(after_rank)::real
       OR (h.rank = sqlc.narg(after_rank)::real AND (h.room_id, h.seq) > (sqlc.arg(after_room)::uuid, sqlc.arg(after_seq)::bigint))
    ORDER BY h.rank DESC, h.room_id, h.seq
    LIMIT sqlc.arg(lim)::int
)
SELECT m.id, m.room_id, m.seq, m.sender_id, m.client_msg_id, m.body, m.sent_at, m.kind, p.rank,
       ts_headline('english'::regconfig, translate(m.body, '<>&', chr(3) || chr(4) || chr(5)), q.tq,
           'StartSel="' || chr(1) || '", StopSel="' || chr(2) || '", MaxWords=30, MinWords=10, MaxFragments=2')::text AS snippet
FROM page p
JOIN chat.messages m ON m.room_id = p.room_id AND m.seq = p.seq
CROSS JOIN q
ORDER BY p.rank DESC, p.room_id, p.seq;
