-- name: ConsentingUsers :many
-- ConsentingUsers returns those of @user_ids who may be added to a room by
-- @inviter_id directly: they are mutual friends (they accepted the
-- inviter's request or had theirs accepted; both rows must be there, a
-- pending request is not consent) and have not blocked them.
SELECT f.user_id FROM chat.friends f
WHERE f.friend_id = @inviter_id AND f.user_id = ANY(@user_ids::uuid[])
  AND EXISTS (SELECT 1 FROM chat.friends r WHERE r.user_id = @inviter_id AND r.friend_id = f.user_id)
  AND NOT EXISTS (SELECT 1 FROM chat.blocks b WHERE b.user_id = f.user_id AND b.blocked_id = @inviter_id);

-- name: BlockersOf :many
-- BlockersOf returns those of @user_ids who have blocked @blocked_id.
SELECT user_id FROM chat.blocks WHERE blocked_id = @blocked_id AND user_id = ANY(@user_ids::uuid[]);

-- name: CreateInvitations :many
-- CreateInvitations invites users to a room, skipping its members and users
-- already holding a pending invitation to it; it returns the new ones.
INSERT INTO chat.invitations (id, room_id, inviter_id, invitee_id)
SELECT gen_random_uuid(), @room_id::uuid, @inviter_id::uuid, t.invitee_id
FROM unnest(@user_ids::uuid[]) AS t(invitee_id)
WHERE NOT EXISTS (SELECT 1 FROM chat.members m WHERE m.room_id = @room_id::uuid AND m.user_id = t.invitee_id)
ON CONFLICT (room_id, invitee_id) WHERE status = 'pending' DO NOTHING
RETURNING *;

-- name: PendingInvitationsFor :many
-- PendingInvitationsFor lists the pending invitations of some users to a room.
SELECT * FROM chat.invitations
WHERE room_id = @room_id AND invitee_id = ANY(@user_ids::uuid[]) AND status = 'pending'
ORDER BY created_at, id;

-- name: ListMyInvitations :many
-- ListMyInvitations lists a user's pending invitations, newest first.
SELECT i.id, i.room_id, r.name AS room_name, i.inviter_id, p.username AS inviter_username,
       p.display_name AS inviter_display_name, i.created_at
FROM chat.invitations i
JOIN chat.rooms r ON r.id = i.room_id
JOIN chat.profiles p ON p.user_id = i.inviter_id
WHERE i.invitee_id = @invitee_id AND i.status = 'pending'
ORDER BY i.created_at DESC, i.id
LIMIT @lim;

-- name: GetInvitation :one
SELECT * FROM chat.invitations WHERE id = @id AND invitee_id = @invitee_id;

-- name: RespondInvitation :one
-- RespondInvitation answers a pending invitation of the invitee's, once.
UPDATE chat.invitations SET status = @status, responded_at = now()
WHERE id = @id AND invitee_id = @invitee_id AND status = 'pending'
RETURNING *;

-- name: DeclineInvitationsFrom :many
-- DeclineInvitationsFrom declines every pending invitation from one user to another.
UPDATE chat.invitations SET status = 'declined', responded_at = now()
WHERE invitee_id = @invitee_id AND inviter_id = @inviter_id AND status = 'pending'
RETURNING *;

-- name: BlockUser :exec
INSERT INTO chat.blocks (user_id, blocked_id) VALUES (@user_id, @blocked_id)
ON CONFLICT DO NOTHING;

-- name: UnblockUser :execrows
DELETE FROM chat.blocks WHERE user_id = @user_id AND blocked_id = @blocked_id;

-- name: IsBlocked :one
-- IsBlocked reports whether @user_id has blocked @blocked_id.
SELECT EXISTS (SELECT 1 FROM chat.blocks WHERE user_id = @user_id AND blocked_id = @blocked_id);

-- name: RemoveFriendship :exec
-- RemoveFriendship deletes the friend rows between two users, both ways.
DELETE FROM chat.friends
WHERE (user_id = @a AND friend_id = @b) OR (user_id = @b AND friend_id = @a);

-- name: LockCreator :exec
-- LockCreator serialises one user's room creations, so the rooms cap holds
-- under concurrency (NO KEY UPDATE: foreign-key checks are not blocked).
SELECT user_id FROM chat.profiles WHERE user_id = @user_id FOR NO KEY UPDATE;

-- name: CountRoomsCreatedBy :one
SELECT count(*) FROM chat.rooms WHERE created_by = @created_by;
