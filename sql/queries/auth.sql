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
), s AS (
    DELETE FROM auth.signup_secrets WHERE user_id IN (SELECT id FROM u)
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
-- ActivateUser ends a sign-up: the user may log in, and the staged secrets
-- of the sign-up go, in the same statement.
WITH s AS (
    DELETE FROM auth.signup_secrets WHERE user_id = @id
)
UPDATE auth.users SET status = 'active', activated_at = coalesce(activated_at, now())
WHERE id = @id;

-- name: DeleteUser :exec
-- DeleteUser compensates CreateUser; only a user that never became active
-- may go. It is the saga's last compensation, so the sign-up's staged
-- secrets go with it.
WITH s AS (
    DELETE FROM auth.signup_secrets WHERE user_id = @id
)
DELETE FROM auth.users WHERE id = @id AND status = 'pending';

-- name: StageSignupSecrets :exec
-- StageSignupSecrets keeps a sign-up's email and password hash out of
-- Temporal history: the api stores them before it starts the saga.
INSERT INTO auth.signup_secrets (signup_id, user_id, email, password_hash)
VALUES (@signup_id, @user_id, @email, @password_hash);

-- name: GetSignupSecrets :one
-- GetSignupSecrets is what the saga's first step reads; a saga can only
-- read the row of its own signup_id and user_id.
SELECT email, password_hash FROM auth.signup_secrets
WHERE signup_id = @signup_id AND user_id = @user_id;

-- name: DeleteSignupSecrets :execrows
DELETE FROM auth.signup_secrets WHERE user_id = @user_id;

-- name: PurgeSignupSecrets :execrows
-- PurgeSignupSecrets removes staged secrets older than a cutoff: those of
-- sagas that ended (terminated) before their first step ran.
DELETE FROM auth.signup_secrets WHERE created_at < @before;

-- name: SetUserRole :execrows
-- SetUserRole is `chatflow admin grant|revoke`: the only way to the admin role.
UPDATE auth.users SET role = @role WHERE username = @username;

-- name: ListAdmins :many
SELECT username, status FROM auth.users WHERE role = 'admin' ORDER BY username;

-- name: CountUsers :one
SELECT count(*) FROM auth.users WHERE status = 'active';
