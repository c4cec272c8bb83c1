-- name: InsertAvatarUpload :one
-- InsertAvatarUpload records an avatar upload the api is about to pre-sign.
INSERT INTO chat.avatar_uploads (id, user_id, object_key, size, content_type)
VALUES (@id, @user_id, @object_key, @size, @content_type)
RETURNING *;

-- name: GetAvatarUpload :one
SELECT * FROM chat.avatar_uploads WHERE id = @id;

-- name: CountPendingAvatarUploads :one
-- CountPendingAvatarUploads counts @user_id's unused avatar uploads since @since.
SELECT count(*) FROM chat.avatar_uploads
WHERE user_id = @user_id AND status = 'pending' AND created_at > @since::timestamptz;

-- name: UseAvatarUpload :execrows
-- UseAvatarUpload marks a pending avatar upload used; 0 rows when it was
-- not pending any more (a concurrent set took it).
UPDATE chat.avatar_uploads SET status = 'used' WHERE id = @id AND status = 'pending';

-- name: DeleteAvatarUpload :exec
-- DeleteAvatarUpload forgets a pending avatar upload whose object was refused.
DELETE FROM chat.avatar_uploads WHERE id = @id AND status = 'pending';

-- name: SetAvatar :one
-- SetAvatar makes @avatar_key the user's avatar (a deleted user's profile
-- takes none) and returns the updated profile with the key it replaced.
WITH old AS (
    SELECT p.avatar_key FROM chat.profiles p WHERE p.user_id = @user_id FOR UPDATE
)
UPDATE chat.profiles p
SET avatar_key = @avatar_key, avatar_version = p.avatar_version + 1
FROM old
WHERE p.user_id = @user_id AND p.deleted_at IS NULL
RETURNING sqlc.embed(p), old.avatar_key AS replaced_key;

-- name: ClearAvatar :one
-- ClearAvatar removes the user's avatar and returns the key it had (NULL:
-- none, and the version stays).
WITH old AS (
    SELECT p.avatar_key FROM chat.profiles p WHERE p.user_id = @user_id FOR UPDATE
)
UPDATE chat.profiles p
SET avatar_key = NULL,
    avatar_version = p.avatar_version + CASE WHEN old.avatar_key IS NULL THEN 0 ELSE 1 END
FROM old
WHERE p.user_id = @user_id
RETURNING old.avatar_key AS removed_key;

-- name: ExpirePendingAvatarUploads :execrows
-- ExpirePendingAvatarUploads marks at most @max avatar uploads pending since
-- before @before expired; UseAvatarUpload no longer takes them.
UPDATE chat.avatar_uploads SET status = 'expired', expired_at = now()
WHERE id IN (
    SELECT u.id FROM chat.avatar_uploads u
    WHERE u.status = 'pending' AND u.created_at < @before::timestamptz
    ORDER BY u.created_at LIMIT @max FOR UPDATE SKIP LOCKED
);

-- name: ExpiredAvatarUploads :many
-- ExpiredAvatarUploads lists at most @max avatar uploads expired before @before.
SELECT id, object_key FROM chat.avatar_uploads
WHERE status = 'expired' AND expired_at < @before::timestamptz
ORDER BY expired_at LIMIT @max;

-- name: ForgetExpiredAvatarUpload :exec
-- ForgetExpiredAvatarUpload deletes an expired avatar upload whose objects are gone.
DELETE FROM chat.avatar_uploads WHERE id = @id AND status = 'expired';
