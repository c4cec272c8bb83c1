-- Attachments (issue 12): the bytes live in the object store (S3), Postgres
-- keeps what the api promised and checked. An upload is 'pending' from the
-- pre-signed PUT until its message is posted, then 'attached' with the
-- client_msg_id of that message (a retry with the same id posts it again,
-- deduplicated; another id is refused).
CREATE TABLE chat.uploads (
    id            uuid PRIMARY KEY,
    room_id       uuid NOT NULL REFERENCES chat.rooms (id) ON DELETE CASCADE,
    uploader_id   uuid NOT NULL,
    object_key    text NOT NULL UNIQUE,
    name          text NOT NULL,
    size          bigint NOT NULL CHECK (size > 0),
    content_type  text NOT NULL,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'attached')),
    client_msg_id text,
    width         integer,
    height        integer,
    -- a JPEG preview is stored at object_key || '.thumb.jpg'
    thumbnail     boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    attached_at   timestamptz
);
-- Pending uploads per user (the cap on unattached uploads) and cleanup.
CREATE INDEX uploads_pending ON chat.uploads (uploader_id, created_at) WHERE status = 'pending';
