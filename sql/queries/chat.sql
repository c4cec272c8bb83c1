-- name: CreateProfile :exec
INSERT INTO chat.profiles (user_id, username, display_name)
VALUES (@user_id, @username, @display_name)
ON CONFLICT (user_id) DO NOTHING;

-- name: DeleteProfile :exec
DELETE FROM chat.profiles WHERE user_id = @user_id;

-- name: GetProfile :one
SELECT * FROM chat.profiles WHERE user_id = @user_id;

-- name: GetProfileByUsername :one
-- GetProfileByUsername finds a user by name; deleted users are nobody's to find.
SELECT * FROM chat.profiles WHERE username = @username AND deleted_at IS NULL;

-- name: UpdateProfile :one
UPDATE chat.profiles
SET display_name = coalesce(sqlc.narg(display_name), display_name),
    status_message = coalesce(sqlc.narg(status_message), status_message)
WHERE user_id = @user_id
RETURNING *;

-- name: SearchProfiles :many
-- SearchProfiles matches a username or display-name prefix, keyset paged by username.
SELECT * FROM chat.profiles
WHERE (username LIKE @prefix::text || '%' OR lower(display_name) LIKE lower(@prefix::text) || '%')
  AND username > @after::text
  AND deleted_at IS NULL
ORDER BY username
LIMIT @lim;

-- name: ProfilesExist :one
-- ProfilesExist counts the users of @ids who exist and are not deleted.
SELECT count(*) FROM chat.profiles WHERE user_id = ANY(@ids::uuid[]) AND deleted_at IS NULL;

-- name: ListFriends :many
SELECT p.* FROM chat.friends f JOIN chat.profiles p ON p.user_id = f.friend_id
WHERE f.user_id = @user_id ORDER BY p.username;

-- name: CreateRoom :one
INSERT INTO chat.rooms (id, name, created_by) VALUES (@id, @name, @created_by)
RETURNING *;

-- name: AddMembers :many
-- AddMembers adds users to a room and returns the ones that were not members yet.
INSERT INTO chat.members (room_id, user_id)
SELECT @room_id, unnest(@user_ids::uuid[])
ON CONFLICT DO NOTHING
RETURNING user_id;

-- name: RemoveMember :execrows
DELETE FROM chat.members WHERE room_id = @room_id AND user_id = @user_id;

-- name: GetRoom :one
SELECT * FROM chat.rooms WHERE id = @id;

-- name: IsMember :one
SELECT EXISTS (SELECT 1 FROM chat.members WHERE room_id = @room_id AND user_id = @user_id);

-- name: RoomMemberIDs :many
SELECT user_id FROM chat.members WHERE room_id = @room_id ORDER BY joined_at, user_id;

-- name: RoomMembers :many
SELECT p.user_id, p.username, p.display_name, m.last_read_seq, p.avatar_key, p.avatar_version
FROM chat.members m JOIN chat.profiles p ON p.user_id = m.user_id
WHERE m.room_id = @room_id ORDER BY m.joined_at, p.username;

-- name: UserRoomIDs :many
SELECT room_id FROM chat.members WHERE user_id = @user_id;

-- name: ListRooms :many
-- ListRooms returns the caller's rooms, newest activity first, with their read markers.
SELECT r.*, m.last_read_seq
FROM chat.members m JOIN chat.rooms r ON r.id = m.room_id
WHERE m.user_id = @user_id
ORDER BY coalesce(r.last_message_at, r.created_at) DESC, r.id
LIMIT @lim;

-- name: MarkRead :one
-- MarkRead moves the read marker forward only, and reports where it was.
WITH prev AS (
    SELECT last_read_seq FROM chat.members
    WHERE room_id = @room_id AND user_id = @user_id
    FOR UPDATE
)
UPDATE chat.members m SET last_read_seq = GREATEST(m.last_read_seq, @seq)
FROM prev
WHERE m.room_id = @room_id AND m.user_id = @user_id
RETURNING m.last_read_seq, prev.last_read_seq AS prev_seq;

-- name: InsertMessages :execrows
-- InsertMessages writes a whole batch in one statement; replays are harmless.
INSERT INTO chat.messages (id, room_id, seq, sender_id, client_msg_id, body, sent_at, kind, reply_to)
SELECT unnest(@ids::uuid[]), unnest(@room_ids::uuid[]), unnest(@seqs::bigint[]),
       unnest(@sender_ids::uuid[]), unnest(@client_msg_ids::text[]), unnest(@bodies::text[]),
       unnest(@sent_ats::timestamptz[]), unnest(@kinds::text[]), NULLIF(unnest(@reply_tos::bigint[]), 0)
ON CONFLICT DO NOTHING;

-- name: ReplaceTombstones :execrows
-- ReplaceTombstones puts messages in place of gap tombstones written for
-- their seqs while they were late (a batch that outlived the reconciler's
-- patience): the real message wins.
UPDATE chat.messages m
SET id = v.id, sender_id = v.sender_id, client_msg_id = v.client_msg_id, body = v.body,
    sent_at = v.sent_at, kind = v.kind, reply_to = NULLIF(v.reply_to, 0)
FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@room_ids::uuid[]) AS room_id, unnest(@seqs::bigint[]) AS seq,
             unnest(@sender_ids::uuid[]) AS sender_id, unnest(@client_msg_ids::text[]) AS client_msg_id,
             unnest(@bodies::text[]) AS body, unnest(@sent_ats::timestamptz[]) AS sent_at,
             unnest(@kinds::text[]) AS kind, unnest(@reply_tos::bigint[]) AS reply_to) v
WHERE m.room_id = v.room_id AND m.seq = v.seq AND m.kind = 'gap' AND v.kind <> 'gap';

-- name: BumpRoomSeqs :exec
-- BumpRoomSeqs advances each room's persisted last_seq to the batch's highest.
-- Concurrent batches touch the same rooms, so rows are locked in id order
-- first (no deadlocks), and rooms already past the batch are not locked at all.
WITH v AS (
    SELECT unnest(@room_ids::uuid[]) AS room_id, unnest(@seqs::bigint[]) AS seq,
           unnest(@ats::timestamptz[]) AS at
), locked AS (
    SELECT r.id FROM chat.rooms r JOIN v ON v.room_id = r.id
    WHERE r.last_seq < v.seq
    ORDER BY r.id
    FOR UPDATE OF r
)
UPDATE chat.rooms r
SET last_seq = GREATEST(r.last_seq, v.seq),
    last_message_at = GREATEST(r.last_message_at, v.at)
FROM v
WHERE r.id = v.room_id AND r.id IN (SELECT id FROM locked);

-- name: ListMessagesAfter :many
SELECT * FROM chat.messages WHERE room_id = @room_id AND seq > @after_seq
ORDER BY seq LIMIT @lim;

-- name: ListMessagesBefore :many
SELECT * FROM chat.messages WHERE room_id = @room_id AND seq < @before_seq
ORDER BY seq DESC LIMIT @lim;

-- name: GetMessageBySeq :one
SELECT * FROM chat.messages WHERE room_id = @room_id AND seq = @seq;

-- name: LastMessages :many
-- LastMessages returns the newest persisted message of each given room.
SELECT DISTINCT ON (room_id) * FROM chat.messages
WHERE room_id = ANY(@room_ids::uuid[]) AND kind <> 'gap'
ORDER BY room_id, seq DESC;

-- name: CountRooms :one
SELECT count(*) FROM chat.rooms;

-- name: CountMessages :one
SELECT count(*) FROM chat.messages;

-- name: ListMessagesRange :many
-- ListMessagesRange returns the persisted messages with lo <= seq <= hi; seqs are gap-free.
SELECT * FROM chat.messages WHERE room_id = @room_id AND seq BETWEEN @lo::bigint AND @hi::bigint
ORDER BY seq;

-- name: RoomLogHead :one
-- RoomLogHead is the highest persisted seq and the contiguous watermark,
-- used to re-seed a room's lost Redis counters.
SELECT GREATEST(r.last_seq, coalesce((SELECT max(m.seq) FROM chat.messages m WHERE m.room_id = r.id), 0))::bigint AS last_seq,
       r.persisted_seq
FROM chat.rooms r WHERE r.id = @room_id;

-- name: CountSeqCollisions :one
-- CountSeqCollisions counts batch messages whose (room, seq) already belongs
-- to a different message: a resend or a retry has the same id, so only a
-- sequencer that handed a seq out twice (lost Redis state) shows up here.
SELECT count(*) FROM chat.messages m
JOIN (SELECT unnest(@ids::uuid[]) AS id, unnest(@room_ids::uuid[]) AS room_id,
             unnest(@seqs::bigint[]) AS seq) v
  ON m.room_id = v.room_id AND m.seq = v.seq
WHERE m.id <> v.id;
