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
-- CreditAccount moves a balance by amount (negative for a debit; the CHECK
-- refuses a negative balance) and takes the account's next ledger entry
-- number, under the row lock the UPDATE holds until commit.
UPDATE customer.accounts SET balance = balance + @amount, last_entry = last_entry + 1
WHERE user_id = @user_id
RETURNING balance, last_entry;

-- name: InsertTransaction :one
INSERT INTO customer.transactions (id, user_id, entry, amount, balance_after, kind, idempotency_key, counterparty_id, transfer_id, memo)
VALUES (@id, @user_id, @entry, @amount, @balance_after, @kind, @idempotency_key, @counterparty_id, @transfer_id, @memo)
ON CONFLICT (user_id, idempotency_key) DO NOTHING
RETURNING *;

-- name: GetTransactionByKey :one
SELECT * FROM customer.transactions WHERE user_id = @user_id AND idempotency_key = @idempotency_key;

-- name: ListTransactions :many
-- ListTransactions pages the ledger newest first by entry number, the order
-- balance_after follows.
SELECT * FROM customer.transactions
WHERE user_id = @user_id AND entry < @before_entry
ORDER BY entry DESC
LIMIT @lim;

-- name: GetAccountForUpdate :one
SELECT * FROM customer.accounts WHERE user_id = @user_id FOR UPDATE;
