-- name: OpenAccount :exec
INSERT INTO customer.accounts (user_id) VALUES (@user_id)
ON CONFLICT (user_id) DO NOTHING;

-- name: CloseAccount :execrows
-- CloseAccount compensates OpenAccount; the account of a user who has become
-- active is kept.
DELETE FROM customer.accounts a
WHERE a.user_id = @user_id
  AND NOT EXISTS (SELECT 1 FROM auth.users u WHERE u.id = a.user_id AND u.status = 'active');

-- name: GetAccount :one
SELECT * FROM customer.accounts WHERE user_id = @user_id;

-- name: CreditAccount :one
UPDATE customer.accounts SET balance = balance + @amount WHERE user_id = @user_id
RETURNING balance;

-- name: InsertTransaction :one
INSERT INTO customer.transactions (id, user_id, amount, balance_after, kind, idempotency_key)
VALUES (@id, @user_id, @amount, @balance_after, @kind, @idempotency_key)
ON CONFLICT (user_id, idempotency_key) DO NOTHING
RETURNING *;

-- name: GetTransactionByKey :one
SELECT * FROM customer.transactions WHERE user_id = @user_id AND idempotency_key = @idempotency_key;

-- name: ListTransactions :many
-- ListTransactions pages the ledger newest first with a (created_at, id) cursor.
SELECT * FROM customer.transactions
WHERE user_id = @user_id
  AND (created_at, id) < (@before_at::timestamptz, @before_id::uuid)
ORDER BY created_at DESC, id DESC
LIMIT @lim;

-- name: GetAccountForUpdate :one
SELECT * FROM customer.accounts WHERE user_id = @user_id FOR UPDATE;
