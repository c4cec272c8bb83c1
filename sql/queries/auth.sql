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

-- Accounts (issue 11): password change, admin disable/enable and listing,
-- last login and last seen times, per-day admin stats.

-- name: ChangePassword :execrows
-- ChangePassword replaces the hash the caller just checked: a concurrent
-- change (the hash is no longer old_hash) or a disabled account changes
-- nothing, and the caller answers accordingly.
UPDATE auth.users SET password_hash = @new_hash, password_changed_at = now()
WHERE id = @id AND password_hash = @old_hash AND status = 'active';

-- name: SetLastLogin :exec
UPDATE auth.users SET last_login_at = now() WHERE id = @id;

-- name: TouchLastSeen :exec
-- TouchLastSeen records that the user's last socket closed; greatest keeps
-- the time from moving backwards when two closes land out of order.
UPDATE auth.users SET last_seen_at = greatest(last_seen_at, now()) WHERE id = @id;

-- name: LastSeen :many
SELECT id, last_seen_at FROM auth.users WHERE id = ANY(@ids::uuid[]);

-- name: DisableUser :one
-- DisableUser moves an active user to disabled; no row means the user is
-- absent or in another status (the caller reads which).
UPDATE auth.users SET status = 'disabled', disabled_at = now()
WHERE id = @id AND status = 'active'
RETURNING *;

-- name: EnableUser :one
UPDATE auth.users SET status = 'active', disabled_at = NULL
WHERE id = @id AND status = 'disabled'
RETURNING *;

-- name: AdminListUsers :many
-- AdminListUsers pages users newest first by (created_at, id), below the
-- cursor's pair; prefix (lower-case, LIKE wildcards escaped) matches the
-- start of the username or the email, empty matches everyone.
SELECT * FROM auth.users
WHERE (@prefix::text = '' OR lower(username) LIKE @prefix::text || '%' OR lower(email) LIKE @prefix::text || '%')
  AND (created_at, id) < (@before_at::timestamptz, @before_id::uuid)
ORDER BY created_at DESC, id DESC
LIMIT @lim;

-- name: AdminDailyStats :many
-- AdminDailyStats counts, for each of the last n UTC days (today included,
-- oldest first, days without activity as zeros): users activated, text
-- messages sent, and distinct senders of those messages.
WITH bounds AS (
    SELECT date_trunc('day', now() AT TIME ZONE 'UTC') - make_interval(days => sqlc.arg(days)::int - 1) AS since
), days AS (
    SELECT d::date AS day
    FROM bounds, generate_series(bounds.since, date_trunc('day', now() AT TIME ZONE 'UTC'), interval '1 day') AS d
), signups AS (
    SELECT (u.activated_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
    FROM auth.users u, bounds
    WHERE u.activated_at >= bounds.since AT TIME ZONE 'UTC'
    GROUP BY 1
), sent AS (
    SELECT (m.sent_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n, count(DISTINCT m.sender_id) AS senders
    FROM chat.messages m, bounds
    WHERE m.sent_at >= bounds.since AT TIME ZONE 'UTC' AND m.kind = 'text'
    GROUP BY 1
)
SELECT to_char(days.day, 'YYYY-MM-DD')::text AS date,
       coalesce(signups.n, 0)::bigint AS signups,
       coalesce(sent.n, 0)::bigint AS messages,
       coalesce(sent.senders, 0)::bigint AS active_users
FROM days
LEFT JOIN signups ON signups.day = days.day
LEFT JOIN sent ON sent.day = days.day
ORDER BY days.day;
