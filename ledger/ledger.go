// Package ledger moves money on customer accounts: one function writes one
// ledger entry and moves the balance with it, in one Postgres transaction
// under the account's row lock. Deposits and withdrawals (api) and every leg
// of a transfer (the transfer saga's activities) go through it, so the
// ledger's rules live in one place:
//
//   - an entry's idempotency key is unique per account across every kind;
//     a key seen before returns the first entry and moves nothing;
//   - entries are numbered per account under the row lock, so entry order is
//     the order balances moved in (balance_after follows it exactly);
//   - amounts are signed (debits negative, see chatflow's sign convention)
//     and no balance ever goes below zero (insufficient_funds; the table's
//     CHECK is the backstop);
//   - a closed account takes no new entries (account_closed), except
//     compensations that return money to where it came from.
package ledger

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// Beginner starts a Postgres transaction (a pool or a connection).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Entry is one ledger entry to write.
type Entry struct {
	UserID uuid.UUID
	// Amount is signed: positive credits, negative debits; never zero.
	Amount int64
	Kind   string
	Key    string
	// CounterpartyID and TransferID are uuid.Nil when there is none.
	CounterpartyID uuid.UUID
	TransferID     uuid.UUID
	Memo           string
	// IntoClosed lets a credit land on a closed account: a compensation
	// returning money to the account it was taken from.
	IntoClosed bool
}

// Result is the entry written, or the first one with the same key.
type Result struct {
	Tx db.CustomerTransaction
	// Replayed is set when the key was used before: Tx is that entry and
	// nothing moved now. The caller checks the entry is the one it meant.
	Replayed bool
}

// Post writes e and moves the account's balance by e.Amount, atomically.
// Domain failures are *chatflow.Error: not_found (no account),
// account_closed, insufficient_funds.
func Post(ctx context.Context, pool Beginner, e Entry) (Result, error) {
	if e.Amount == 0 {
		return Result{}, errors.New("ledger: an entry moves a non-zero amount")
	}
	var res Result
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		// The row lock serialises every entry of the account: the key check
		// below always sees the first entry with the key, and the entry
		// number taken by CreditAccount is the order balances move in.
		acct, err := q.GetAccountForUpdate(ctx, e.UserID)
		if errors.Is(err, pgx.ErrNoRows) {
			return chatflow.Errorf(chatflow.ECodeNotFound, "account of user %s not found", e.UserID)
		}
		if err != nil {
			return err
		}
		prev, err := q.GetTransactionByKey(ctx, db.GetTransactionByKeyParams{UserID: e.UserID, IdempotencyKey: e.Key})
		if err == nil {
			res = Result{Tx: prev, Replayed: true}
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if acct.ClosedAt != nil && !(e.IntoClosed && e.Amount > 0) {
			return chatflow.Errorf(chatflow.ECodeAccountClosed, "account of user %s is closed", e.UserID)
		}
		if acct.Balance+e.Amount < 0 {
			return chatflow.Errorf(chatflow.ECodeInsufficientFunds, "balance %d is less than %d", acct.Balance, -e.Amount)
		}
		moved, err := q.CreditAccount(ctx, db.CreditAccountParams{UserID: e.UserID, Amount: e.Amount})
		if err != nil {
			return err
		}
		res.Tx, err = q.InsertTransaction(ctx, db.InsertTransactionParams{
			ID: uuid.New(), UserID: e.UserID, Entry: moved.LastEntry, Amount: e.Amount, BalanceAfter: moved.Balance,
			Kind: e.Kind, IdempotencyKey: e.Key, CounterpartyID: optional(e.CounterpartyID),
			TransferID: optional(e.TransferID), Memo: e.Memo,
		})
		return err
	})
	return res, err
}

// optional maps uuid.Nil to SQL NULL.
func optional(id uuid.UUID) pgtype.UUID {
	return pgtype.UUID{Bytes: id, Valid: id != uuid.Nil}
}

// ID returns a nullable uuid column's value (uuid.Nil for NULL).
func ID(v pgtype.UUID) uuid.UUID {
	if !v.Valid {
		return uuid.Nil
	}
	return v.Bytes
}
