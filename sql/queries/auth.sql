-- name: CreateUser :execrows
-- CreateUser inserts pending credentials; a replay of the same saga step is a no-op.
INSERT INTO auth.users (id, username, email, password_hash)
VALUES (@id, @username, @email, @password_hash)
ON CONFLICT (id) DO NOTHING;

-- name: GetUserByID :one
SELECT * FROM auth.users WHERE id = @id;

-- name: GetUserByUsername :one
SELECT * FROM auth.users WHERE username = @username;

-- name: SignupHolders :many
-- SignupHolders lists the credentials holding a username or an email, so the
-- API can tell a registered user (active) or a running sign-up from the
-- pending leftovers of a sign-up saga that has ended without completing.
SELECT id, username, email, status FROM auth.users
WHERE username = @username OR email = @email;

-- name: DeleteStaleSignup :one
-- DeleteStaleSignup removes what a sign-up saga that ended without completing
-- (terminated, timed out) left behind: its pending credentials and, with
-- them, its chat profile and customer account, in one statement. An active
-- user is never touched; the answer is the number of credentials removed.
WITH u AS (
    DELETE FROM auth.users WHERE id = @id AND status = 'pending' RETURNING id
), p AS (
    DELETE FROM chat.profiles WHERE user_id IN (SELECT id FROM u)
), a AS (
    DELETE FROM customer.accounts WHERE user_id IN (SELECT id FROM u)
)
SELECT count(*) FROM u;

-- name: DeleteOrphanProfiles :execrows
-- DeleteOrphanProfiles frees a username held by chat profiles whose
-- credentials are gone. The saga creates the profile after the credentials
-- and removes it before them, so such a profile belongs to no sign-up.
DELETE FROM chat.profiles p
WHERE p.username = @username
  AND NOT EXISTS (SELECT 1 FROM auth.users u WHERE u.id = p.user_id);

-- name: DeleteSignupProfile :execrows
-- DeleteSignupProfile compensates the saga's CreateProfile; the profile of a
-- user who has become active is kept.
DELETE FROM chat.profiles p
WHERE p.user_id = @user_id
  AND NOT EXISTS (SELECT 1 FROM auth.users u WHERE u.id = p.user_id AND u.status = 'active');

-- name: ActivateUser :execrows
UPDATE auth.users SET status = 'active', activated_at = coalesce(activated_at, now())
WHERE id = @id;

-- name: DeleteUser :exec
-- DeleteUser compensates CreateUser; only a user that never became active may go.
DELETE FROM auth.users WHERE id = @id AND status = 'pending';

-- name: CountUsers :one
SELECT count(*) FROM auth.users WHERE status = 'active';
