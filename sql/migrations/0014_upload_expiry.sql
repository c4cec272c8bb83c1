-- Uploads that are never attached, and avatar uploads never set, are swept
-- (the SweepUploads workflow, on a Temporal Schedule). A sweep first marks
-- those pending for longer than UPLOAD_PENDING_TTL 'expired': attaching or
-- setting wants 'pending', so from then on no request takes them. Only on a
-- later sweep, once any request that read one as pending has long ended,
-- are its objects (the original and what the api derived from it: a file's
-- thumbnail, an avatar's square JPEG) deleted, and the row with them. An
-- object delete that fails leaves the row 'expired' for the next sweep, so
-- no object is forgotten while the store is down.
ALTER TABLE chat.uploads
    DROP CONSTRAINT uploads_status_check,
    ADD CONSTRAINT uploads_status_check CHECK (status IN ('pending', 'attached', 'expired')),
    ADD COLUMN expired_at timestamptz;
ALTER TABLE chat.avatar_uploads
    DROP CONSTRAINT avatar_uploads_status_check,
    ADD CONSTRAINT avatar_uploads_status_check CHECK (status IN ('pending', 'used', 'expired')),
    ADD COLUMN expired_at timestamptz;
-- The sweep's two scans: pending by age (the existing pending indexes lead
-- with the user), expired by when.
CREATE INDEX uploads_pending_age ON chat.uploads (created_at) WHERE status = 'pending';
CREATE INDEX uploads_expired ON chat.uploads (expired_at) WHERE status = 'expired';
CREATE INDEX avatar_uploads_pending_age ON chat.avatar_uploads (created_at) WHERE status = 'pending';
CREATE INDEX avatar_uploads_expired ON chat.avatar_uploads (expired_at) WHERE status = 'expired';
