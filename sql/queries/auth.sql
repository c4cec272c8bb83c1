-- name: CreateUser :execrows
-- CreateUser inserts pending credentials; a replay of the same saga step is a no-op.
INSERT INTO auth.users (id, username, email, password_hash)
VALUES (@id, @username, @email, @password_hash)
ON CONFLICT (id) DO NOTHING;

-- name: GetUserByID :one
SELECT * FROM auth.users WHERE id = @id;

-- name: GetUserByUsername :one
SELECT * FROM auth.users WHERE username = @username;

-- name: UsernameOrEmailExists :one
-- UsernameOrEmailExists tells the API whether a sign-up would collide, before a saga starts.
SELECT
    EXISTS (SELECT 1 FROM auth.users u WHERE u.username = @username) AS username_taken,
    EXISTS (SELECT 1 FROM auth.users u WHERE u.email = @email) AS email_taken;

-- name: ActivateUser :execrows
UPDATE auth.users SET status = 'active', activated_at = coalesce(activated_at, now())
WHERE id = @id;

-- name: DeleteUser :exec
-- DeleteUser compensates CreateUser; only a user that never became active may go.
DELETE FROM auth.users WHERE id = @id AND status = 'pending';

-- name: CountUsers :one
SELECT count(*) FROM auth.users WHERE status = 'active';
