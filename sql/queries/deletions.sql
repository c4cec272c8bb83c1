-- Account deletion (the DeleteUser saga). Every statement is safe to
-- repeat: the saga's activities are retried until they succeed.

-- name: MarkUserDeleting :execrows
-- MarkUserDeleting is the api's first move: an active user becomes
-- 'deleting', so login and refresh stop at once.
UPDATE auth.users SET status = 'deleting' WHERE id = @id AND status = 'active';

-- name: CreateDeletion :one
-- CreateDeletion records a deletion as running; deletions_one_running
-- refuses a second running one for the same user.
INSERT INTO auth.deletions (id, user_id, username) VALUES (@id, @user_id, @username)
RETURNING *;

-- name: GetDeletion :one
SELECT * FROM auth.deletions WHERE id = @id;

-- name: SetDeletionStep :execrows
-- SetDeletionStep records the step a running deletion is at.
UPDATE auth.deletions SET step = @step WHERE id = @id AND status = 'running';

-- name: FailDeletion :execrows
-- FailDeletion ends a running deletion as failed, with the step it stopped at.
UPDATE auth.deletions
SET status = 'failed', step = @step, error_code = @error_code, error = @error, finished_at = now()
WHERE id = @id AND status = 'running';

-- name: CompleteDeletion :execrows
UPDATE auth.deletions SET status = 'completed', step = @step, finished_at = now()
WHERE id = @id AND status = 'running';

-- name: ReactivateDeletingUser :execrows
-- ReactivateDeletingUser gives a user whose deletion failed their account
-- back, unless another deletion of theirs is running (a later attempt owns
-- the 'deleting' status then).
UPDATE auth.users u SET status = 'active'
WHERE u.id = @id AND u.status = 'deleting'
  AND NOT EXISTS (SELECT 1 FROM auth.deletions d
                  WHERE d.user_id = u.id AND d.status = 'running' AND d.id <> @deletion_id);

-- name: RemoveUserFriendships :execrows
-- RemoveUserFriendships deletes a user's friendships, both directions.
DELETE FROM chat.friends WHERE user_id = @user_id OR friend_id = @user_id;

-- name: RemoveUserFriendRequests :execrows
DELETE FROM chat.friend_requests WHERE from_id = @user_id OR to_id = @user_id;

-- name: DeclineUserInvitations :execrows
-- DeclineUserInvitations declines every pending invitation to or from a user.
UPDATE chat.invitations SET status = 'declined', responded_at = now()
WHERE (invitee_id = @user_id OR inviter_id = @user_id) AND status = 'pending';

-- name: RemoveUserBlocks :execrows
DELETE FROM chat.blocks WHERE user_id = @user_id OR blocked_id = @user_id;

-- name: CloseAccountForDeletion :execrows
-- CloseAccountForDeletion closes an empty customer account (the caller holds
-- its row lock and has checked the balance); the row stays as a record.
UPDATE customer.accounts SET closed_at = coalesce(closed_at, now())
WHERE user_id = @user_id AND balance = 0;

-- name: AnonymizeProfile :execrows
-- AnonymizeProfile turns a deleted user's profile into "deleted user" and
-- frees their username; the profile stays so their messages keep a sender.
UPDATE chat.profiles
SET display_name = @display_name, status_message = '', username = @username,
    avatar_key = NULL,
    deleted_at = coalesce(deleted_at, now())
WHERE user_id = @user_id;

-- name: DeleteDeletingUser :execrows
-- DeleteDeletingUser removes the credentials of a user being deleted (with
-- any staged sign-up secrets): only now do the username and email become free.
WITH s AS (
    DELETE FROM auth.signup_secrets WHERE user_id = @id
)
DELETE FROM auth.users WHERE id = @id AND status = 'deleting';
