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
