-- name: OwnUnread :many
-- OwnUnread counts, per room, the user's own persisted messages after
-- the user's read marker: unread_count leaves them out (nobody has their
-- own messages to read), and reaction, edit and delete events, which change an earlier
-- message rather than bring a new one. An index range scan of the unread seqs.
SELECT m.room_id, count(*)::bigint AS n
FROM chat.members mb
JOIN chat.messages m ON m.room_id = mb.room_id AND m.seq > mb.last_read_seq
WHERE mb.user_id = @user_id::uuid AND mb.room_id = ANY(@room_ids::uuid[])
  AND (m.sender_id = @user_id::uuid OR m.kind IN ('reaction', 'edit', 'delete'))
GROUP BY m.room_id;

-- name: DisplayNames :many
-- DisplayNames returns the display names of the given users (the senders
-- of a history page).
SELECT user_id, display_name FROM chat.profiles WHERE user_id = ANY(@user_ids::uuid[]);
