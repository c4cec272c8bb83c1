-- Avatars (issue 12): the client uploads the original to the object store
-- with a pre-signed PUT (chat.avatar_uploads tracks what it declared), the
-- api checks and decodes it and stores a 128x128 JPEG at avatar_key. The
-- profile's avatar_version grows on every change, so avatar URLs carry a
-- cache buster (?v=) that changes with the picture.
ALTER TABLE chat.profiles
    ADD COLUMN avatar_key     text,
    ADD COLUMN avatar_version bigint NOT NULL DEFAULT 0;

CREATE TABLE chat.avatar_uploads (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    object_key   text NOT NULL UNIQUE,
    size         bigint NOT NULL CHECK (size > 0),
    content_type text NOT NULL,
    -- pending until PUT /me/avatar takes it (used) or refuses its object
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'used')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX avatar_uploads_pending ON chat.avatar_uploads (user_id, created_at) WHERE status = 'pending';
