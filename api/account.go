package api

import (
	"context"
	"encoding/base64"
	"math"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// The caller's own account: who they are (GET /me), their balance and
// transaction history (deposits and withdrawals: money.go).

type accountView struct {
	Balance int64 `json:"balance"`
}

type meView struct {
	UserID        string      `json:"user_id"`
	Username      string      `json:"username"`
	DisplayName   string      `json:"display_name"`
	StatusMessage string      `json:"status_message"`
	AvatarURL     string      `json:"avatar_url,omitempty"`
	Email         string      `json:"email"`
	Role          string      `json:"role"`
	Account       accountView `json:"account"`
	// LastLoginAt is the time of the latest successful login (this
	// session's, or a later one's).
	LastLoginAt *time.Time `json:"last_login_at"`
}

func (s *Server) me(c *fiber.Ctx) error {
	v, err := s.meOf(c.UserContext(), userID(c))
	if err != nil {
		return err
	}
	return c.JSON(v)
}

// meOf is the caller's own view (GET /me, and the answer to an avatar change).
func (s *Server) meOf(ctx context.Context, id uuid.UUID) (meView, error) {
	u, err := s.Queries.GetUserByID(ctx, id)
	if isNotFound(err) {
		return meView{}, chatflow.Errorf(chatflow.ECodeNotFound, "user not found")
	}
	if err != nil {
		return meView{}, err
	}
	p, err := s.Queries.GetProfile(ctx, id)
	if err != nil && !isNotFound(err) {
		return meView{}, err
	}
	acct, err := s.Queries.GetAccount(ctx, id)
	if err != nil && !isNotFound(err) {
		return meView{}, err
	}
	return meView{
		UserID: u.ID.String(), Username: u.Username, DisplayName: p.DisplayName, StatusMessage: p.StatusMessage,
		AvatarURL: avatarURL(u.ID, p.AvatarKey, p.AvatarVersion),
		Email:     u.Email, Role: u.Role, Account: accountView{Balance: acct.Balance}, LastLoginAt: utc(u.LastLoginAt),
	}, nil
}

func (s *Server) transactions(c *fiber.Ctx) error {
	limit, err := pageLimit(c, 50, 200)
	if err != nil {
		return err
	}
	before := int64(math.MaxInt64)
	if err := chatflow.ValidCursor("cursor", c.Query("cursor")); err != nil {
		return err
	}
	if cur := c.Query("cursor"); cur != "" {
		e, ok := decodeCursor(cur)
		if !ok {
			return chatflow.Errorf(chatflow.ECodeValidation, "cursor is not valid")
		}
		before = e
	}
	rows, err := s.Queries.ListTransactions(c.UserContext(), db.ListTransactionsParams{
		UserID: userID(c), BeforeEntry: before, Lim: int32(limit),
	})
	if err != nil {
		return err
	}
	out := make([]txView, len(rows))
	for i, r := range rows {
		out[i] = txOf(r.CustomerTransaction)
		if out[i].Counterparty != nil && r.CounterpartyUsername != nil {
			out[i].Counterparty.Username = *r.CounterpartyUsername
		}
	}
	resp := fiber.Map{"transactions": out}
	if len(rows) == int(limit) {
		last := rows[len(rows)-1]
		resp["next_cursor"] = encodeCursor(last.CustomerTransaction.Entry)
	}
	return c.JSON(resp)
}

// The ledger cursor is the entry number to continue below, opaque to
// clients ("e" and the number, base64url).
func encodeCursor(entry int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("e" + strconv.FormatInt(entry, 10)))
}

func decodeCursor(s string) (int64, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) < 2 || raw[0] != 'e' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw[1:]), 10, 64)
	return n, err == nil && n > 0
}
