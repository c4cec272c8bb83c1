-- Room administration and direct messages (issue 12).

-- name: MembersJoinedAt :many
-- MembersJoinedAt returns when each of @user_ids joined the room: the
-- membership's version in the client_msg_ids of its system events.
SELECT user_id, joined_at FROM chat.members
WHERE room_id = @room_id AND user_id = ANY(@user_ids::uuid[]);

-- name: RenameRoom :one
-- RenameRoom renames a room, counting renames; renaming to the current
-- name changes nothing and returns the current count (a retry).
UPDATE chat.rooms
SET name = @name,
    name_version = name_version + CASE WHEN name = @name THEN 0 ELSE 1 END
WHERE id = @id
RETURNING *;

-- name: SetMuted :execrows
UPDATE chat.members SET muted = @muted WHERE room_id = @room_id AND user_id = @user_id;

-- name: MemberMuted :one
SELECT muted FROM chat.members WHERE room_id = @room_id AND user_id = @user_id;

-- name: RoomSummaries :many
-- RoomSummaries returns, for each of the caller's rooms, the member count,
-- the caller's mute flag and the first three display names other than
-- the caller's (in join order).
SELECT m.room_id, m.muted,
       (SELECT count(*) FROM chat.members c WHERE c.room_id = m.room_id)::bigint AS member_count,
       coalesce((SELECT array_agg(x.display_name ORDER BY x.joined_at, x.username)::text[] FROM (
            SELECT p.display_name, p.username, o.joined_at FROM chat.members o
            JOIN chat.profiles p ON p.user_id = o.user_id
            WHERE o.room_id = m.room_id AND o.user_id <> @user_id
            ORDER BY o.joined_at, p.username LIMIT 3) x), '{}')::text[] AS member_names
FROM chat.members m
WHERE m.user_id = @user_id AND m.room_id = ANY(@room_ids::uuid[]);

-- name: GetDM :one
SELECT room_id FROM chat.dms WHERE user_lo = @user_lo AND user_hi = @user_hi;

-- name: CreateDM :execrows
-- CreateDM records the pair's DM room unless the pair has one already.
INSERT INTO chat.dms (user_lo, user_hi, room_id) VALUES (@user_lo, @user_hi, @room_id)
ON CONFLICT DO NOTHING;

-- name: CreateRoomKind :one
INSERT INTO chat.rooms (id, name, created_by, kind) VALUES (@id, @name, @created_by, @kind)
RETURNING *;
