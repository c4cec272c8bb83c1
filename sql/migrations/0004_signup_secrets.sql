-- What a sign-up must not show in Temporal history (the bcrypt hash of the
-- password and the email) waits here, keyed by signup_id, from the moment
-- the api accepts the sign-up until the saga's first step copies it into
-- auth.users. The saga's input carries neither. The row is deleted when the
-- saga activates the user, when its last compensation runs, when its first
-- step ends it with a verdict (username or email taken), when the api could
-- not start the saga, and by the api once it is older than a day (a saga
-- terminated before its first step).
CREATE TABLE auth.signup_secrets (
    signup_id     uuid PRIMARY KEY,
    user_id       uuid NOT NULL UNIQUE,
    email         text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signup_secrets_created_at ON auth.signup_secrets (created_at);
