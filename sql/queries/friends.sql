-- Mutual friendship (issue 11). chat.friends holds both directions of
-- every friendship; chat.friend_requests the pending asks (from → to).
-- Every write to one pair's rows runs in a transaction that first takes
-- LockFriendPair, so two users acting on each other at the same moment
-- are serialised: never requests both ways, never half a friendship.

-- name: LockFriendPair :exec
-- LockFriendPair serialises every friendship write between two users (in
-- either order) until the transaction ends. A hash collision with another
-- pair only makes one wait for the other.
SELECT pg_advisory_xact_lock(hashtextextended(
    least(@a::uuid, @b::uuid)::text || '/' || greatest(@a::uuid, @b::uuid)::text, 7011));

-- name: FriendPairState :one
-- FriendPairState is what stands between @me and @other: friendship,
-- pending requests each way and blocks each way.
SELECT
    EXISTS (SELECT 1 FROM chat.friends f WHERE f.user_id = @me::uuid AND f.friend_id = @other::uuid) AS friends,
    EXISTS (SELECT 1 FROM chat.friend_requests o WHERE o.from_id = @me::uuid AND o.to_id = @other::uuid) AS outgoing,
    EXISTS (SELECT 1 FROM chat.friend_requests i WHERE i.from_id = @other::uuid AND i.to_id = @me::uuid) AS incoming,
    EXISTS (SELECT 1 FROM chat.blocks b WHERE b.user_id = @me::uuid AND b.blocked_id = @other::uuid) AS i_blocked,
    EXISTS (SELECT 1 FROM chat.blocks c WHERE c.user_id = @other::uuid AND c.blocked_id = @me::uuid) AS blocked_me;

-- name: CreateFriendRequest :one
INSERT INTO chat.friend_requests (from_id, to_id) VALUES (@from_id, @to_id)
RETURNING *;

-- name: AcceptFriendRequest :one
-- AcceptFriendRequest turns the request @from_id → @to_id into a
-- friendship in one statement: the request goes and both directions come,
-- or (no such request) nothing happens and no row is returned.
WITH req AS (
    DELETE FROM chat.friend_requests WHERE from_id = @from_id AND to_id = @to_id
    RETURNING from_id, to_id
), ins AS (
    INSERT INTO chat.friends (user_id, friend_id)
    SELECT from_id, to_id FROM req UNION ALL SELECT to_id, from_id FROM req
    ON CONFLICT DO NOTHING
)
SELECT from_id, to_id FROM req;

-- name: DeleteFriendRequest :one
-- DeleteFriendRequest removes one pending request (declined or canceled).
DELETE FROM chat.friend_requests WHERE from_id = @from_id AND to_id = @to_id
RETURNING *;

-- name: DeleteFriendRequestsBetween :exec
-- DeleteFriendRequestsBetween removes the pending requests between two
-- users, both ways (a block).
DELETE FROM chat.friend_requests
WHERE (from_id = @a AND to_id = @b) OR (from_id = @b AND to_id = @a);

-- name: Unfriend :execrows
-- Unfriend ends a friendship: both directions in one statement.
DELETE FROM chat.friends
WHERE (user_id = @a AND friend_id = @b) OR (user_id = @b AND friend_id = @a);

-- name: ListIncomingFriendRequests :many
-- ListIncomingFriendRequests lists the requests to @me, newest first, with
-- the profile of who asked.
SELECT sqlc.embed(p), r.created_at AS requested_at
FROM chat.friend_requests r JOIN chat.profiles p ON p.user_id = r.from_id
WHERE r.to_id = @me AND p.deleted_at IS NULL
ORDER BY r.created_at DESC, r.from_id
LIMIT @lim;

-- name: ListOutgoingFriendRequests :many
-- ListOutgoingFriendRequests lists the requests @me sent, newest first,
-- with the profile of who was asked.
SELECT sqlc.embed(p), r.created_at AS requested_at
FROM chat.friend_requests r JOIN chat.profiles p ON p.user_id = r.to_id
WHERE r.from_id = @me AND p.deleted_at IS NULL
ORDER BY r.created_at DESC, r.to_id
LIMIT @lim;
