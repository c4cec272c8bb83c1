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
-- balance_after follows, with the counterparty's username (if any).
SELECT sqlc.embed(t), p.username AS counterparty_username
FROM customer.transactions t
LEFT JOIN chat.profiles p ON p.user_id = t.counterparty_id
WHERE t.user_id = @user_id AND t.entry < @before_entry
ORDER BY t.entry DESC
LIMIT @lim;

-- name: GetAccountForUpdate :one
SELECT * FROM customer.accounts WHERE user_id = @user_id FOR UPDATE;

-- Transfers (customer.transfers): the api inserts a pending row, the
-- transfer saga moves the money and records the outcome.

-- name: InsertTransfer :one
-- InsertTransfer returns no row when the sender already used the key.
INSERT INTO customer.transfers (id, from_id, to_id, room_id, amount, memo, idempotency_key)
VALUES (@id, @from_id, @to_id, @room_id, @amount, @memo, @idempotency_key)
ON CONFLICT (from_id, idempotency_key) DO NOTHING
RETURNING *;

-- name: GetTransfer :one
SELECT * FROM customer.transfers WHERE id = @id;

-- name: GetTransferByKey :one
SELECT * FROM customer.transfers WHERE from_id = @from_id AND idempotency_key = @idempotency_key;

-- name: SetTransferMessageSeq :execrows
UPDATE customer.transfers SET message_seq = @message_seq
WHERE id = @id AND message_seq IS NULL;

-- name: FinishTransfer :execrows
-- FinishTransfer records a pending transfer's outcome once; a repeat finds
-- the row no longer pending and changes nothing.
UPDATE customer.transfers
SET status = @status, error_code = @error_code, error = @error, finished_at = now()
WHERE id = @id AND status = 'pending';

-- name: ListUserTransfers :many
-- ListUserTransfers pages the transfers a user sent or received, newest
-- first.
SELECT * FROM customer.transfers
WHERE (from_id = @user_id OR to_id = @user_id)
  AND (created_at, id) < (@before_at::timestamptz, @before_id::uuid)
ORDER BY created_at DESC, id DESC
LIMIT @lim;

-- name: ListStalePendingTransfers :many
-- ListStalePendingTransfers returns transfers still pending that were
-- recorded between @since and @before, oldest first: those whose saga may
-- never have started (the api answered 503 and the sender did not repeat
-- the request).
SELECT * FROM customer.transfers
WHERE status = 'pending' AND created_at < @before::timestamptz AND created_at > @since::timestamptz
ORDER BY created_at
LIMIT @lim;
