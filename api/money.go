package api

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/ledger"
)

// Deposits and withdrawals: one ledger entry each, written by ledger.Post
// (row lock, per-account entry number, idempotency key, no negative
// balance). Amounts in requests are positive; the ledger stores debits as
// negative amounts (chatflow's sign convention).

// txView is one ledger entry as clients see it.
type txView struct {
	TransactionID  string `json:"transaction_id"`
	Entry          int64  `json:"entry"`
	Amount         int64  `json:"amount"`
	BalanceAfter   int64  `json:"balance_after"`
	Kind           string `json:"kind"`
	IdempotencyKey string `json:"idempotency_key"`
	// Counterparty is the other user of a transfer entry.
	Counterparty *partyView `json:"counterparty,omitempty"`
	TransferID   string     `json:"transfer_id,omitempty"`
	Memo         string     `json:"memo,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
}

// partyView names a user; Username is empty when their profile is gone.
type partyView struct {
	UserID   string `json:"user_id"`
	Username string `json:"username,omitempty"`
}

func txOf(t db.CustomerTransaction) txView {
	v := txView{TransactionID: t.ID.String(), Entry: t.Entry, Amount: t.Amount, BalanceAfter: t.BalanceAfter, Kind: t.Kind,
		IdempotencyKey: t.IdempotencyKey, Memo: t.Memo, CreatedAt: t.CreatedAt.UTC()}
	if t.CounterpartyID.Valid {
		v.Counterparty = &partyView{UserID: ledger.ID(t.CounterpartyID).String()}
	}
	if t.TransferID.Valid {
		v.TransferID = ledger.ID(t.TransferID).String()
	}
	return v
}

func (s *Server) deposit(c *fiber.Ctx) error { return s.moveMoney(c, chatflow.TxDeposit, 1) }

func (s *Server) withdraw(c *fiber.Ctx) error { return s.moveMoney(c, chatflow.TxWithdrawal, -1) }

// moveMoney writes a deposit (sign 1) or a withdrawal (sign -1) of the
// requested amount. A key used before returns its entry (200,
// Idempotent-Replayed: true) if it was the same kind and amount, and is a
// conflict otherwise: keys are per user, shared by every kind.
func (s *Server) moveMoney(c *fiber.Ctx, kind string, sign int64) error {
	var req struct {
		Amount         int64  `json:"amount"`
		IdempotencyKey string `json:"idempotency_key"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := chatflow.ValidAmount(req.Amount); err != nil {
		return err
	}
	if err := chatflow.ValidClientKey(req.IdempotencyKey); err != nil {
		return err
	}
	res, err := ledger.Post(c.UserContext(), s.Pool, ledger.Entry{
		UserID: userID(c), Amount: sign * req.Amount, Kind: kind, Key: req.IdempotencyKey,
	})
	if err != nil {
		return err
	}
	if res.Replayed {
		if res.Tx.Kind != kind || res.Tx.Amount != sign*req.Amount {
			return chatflow.Errorf(chatflow.ECodeConflict, "idempotency_key was already used for a %s of %d", res.Tx.Kind, abs(res.Tx.Amount))
		}
		c.Set("Idempotent-Replayed", "true")
		return c.Status(fiber.StatusOK).JSON(txOf(res.Tx))
	}
	return c.Status(fiber.StatusCreated).JSON(txOf(res.Tx))
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
