-- name: InsertUpload :one
-- InsertUpload records an upload the api is about to pre-sign.
INSERT INTO chat.uploads (id, room_id, uploader_id, object_key, name, size, content_type)
VALUES (@id, @room_id, @uploader_id, @object_key, @name, @size, @content_type)
RETURNING *;

-- name: GetUpload :one
SELECT * FROM chat.uploads WHERE id = @id;

-- name: CountPendingUploads :one
-- CountPendingUploads counts @uploader_id's unattached uploads since @since.
SELECT count(*) FROM chat.uploads
WHERE uploader_id = @uploader_id AND status = 'pending' AND created_at > @since::timestamptz;

-- name: AttachUpload :one
-- AttachUpload marks a pending upload attached by the message @client_msg_id;
-- no row when it is not pending any more (a concurrent attach won).
UPDATE chat.uploads
SET status = 'attached', client_msg_id = @client_msg_id, width = @width, height = @height, thumbnail = @thumbnail, attached_at = now()
WHERE id = @id AND status = 'pending'
RETURNING *;

-- name: DeleteUpload :exec
-- DeleteUpload forgets a pending upload whose object was refused.
DELETE FROM chat.uploads WHERE id = @id AND status = 'pending';

-- name: ExpirePendingUploads :execrows
-- ExpirePendingUploads marks at most @max uploads pending since before
-- @before expired; AttachUpload no longer takes them.
UPDATE chat.uploads SET status = 'expired', expired_at = now()
WHERE id IN (
    SELECT u.id FROM chat.uploads u
    WHERE u.status = 'pending' AND u.created_at < @before::timestamptz
    ORDER BY u.created_at LIMIT @max FOR UPDATE SKIP LOCKED
);

-- name: ExpiredUploads :many
-- ExpiredUploads lists at most @max uploads expired before @before.
SELECT id, object_key FROM chat.uploads
WHERE status = 'expired' AND expired_at < @before::timestamptz
ORDER BY expired_at LIMIT @max;

-- name: ForgetExpiredUpload :exec
-- ForgetExpiredUpload deletes an expired upload whose objects are gone.
DELETE FROM chat.uploads WHERE id = @id AND status = 'expired';
