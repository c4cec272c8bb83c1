package api

import (
	"context"
	"encoding/base64"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

type userView struct {
	UserID        string `json:"user_id"`
	Username      string `json:"username"`
	DisplayName   string `json:"display_name"`
	StatusMessage string `json:"status_message"`
}

func profileView(p db.ChatProfile) userView {
	return userView{UserID: p.UserID.String(), Username: p.Username, DisplayName: p.DisplayName, StatusMessage: p.StatusMessage}
}

func (s *Server) updateMe(c *fiber.Ctx) error {
	var req struct {
		DisplayName   *string `json:"display_name"`
		StatusMessage *string `json:"status_message"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.DisplayName != nil {
		*req.DisplayName = strings.TrimSpace(*req.DisplayName)
		if err := chatflow.ValidDisplayName(*req.DisplayName); err != nil {
			return err
		}
	}
	if req.StatusMessage != nil && (!utf8.ValidString(*req.StatusMessage) || utf8.RuneCountInString(*req.StatusMessage) > 200) {
		return chatflow.Errorf(chatflow.ECodeValidation, "status_message must be at most 200 characters of valid UTF-8")
	}
	ctx, me := c.UserContext(), userID(c)
	p, err := s.Queries.UpdateProfile(ctx, db.UpdateProfileParams{UserID: me, DisplayName: req.DisplayName, StatusMessage: req.StatusMessage})
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "profile not found")
	}
	if err != nil {
		return err
	}
	v := profileView(p)
	rooms, err := s.Queries.UserRoomIDs(ctx, me)
	if err == nil {
		for _, r := range rooms {
			_ = s.publish(ctx, roomChannel(r.String()), map[string]any{
				"type": "profile", "room_id": r.String(), "user_id": v.UserID, "display_name": v.DisplayName, "status_message": v.StatusMessage,
			})
		}
	}
	return c.JSON(v)
}

func (s *Server) searchUsers(c *fiber.Ctx) error {
	q := strings.TrimSpace(c.Query("q"))
	if q == "" || len(q) > 64 || !utf8.ValidString(q) {
		return chatflow.Errorf(chatflow.ECodeValidation, "q must be 1-64 characters")
	}
	limit, has, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	if !has || limit > chatflow.MaxUserSearch || limit == 0 {
		limit = chatflow.MaxUserSearch
	}
	// LIKE wildcards in the query are literal characters, not patterns.
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q)
	rows, err := s.Queries.SearchProfiles(c.UserContext(), db.SearchProfilesParams{Prefix: esc, After: c.Query("after"), Lim: int32(limit)})
	if err != nil {
		return err
	}
	out := make([]userView, len(rows))
	for i, r := range rows {
		out[i] = profileView(r)
	}
	// The contract's answer is a bare array; the next page's cursor rides in
	// a header (pass it back as ?after=).
	if len(rows) == int(limit) {
		c.Set("X-Next-After", rows[len(rows)-1].Username)
	}
	return c.JSON(out)
}

func (s *Server) listFriends(c *fiber.Ctx) error {
	rows, err := s.Queries.ListFriends(c.UserContext(), userID(c))
	if err != nil {
		return err
	}
	out := make([]userView, len(rows))
	for i, r := range rows {
		out[i] = profileView(r)
	}
	return c.JSON(out) // the contract lists the friends themselves
}

func (s *Server) addFriend(c *fiber.Ctx) error {
	var req struct {
		Username string `json:"username"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if !chatflow.ValidUsername(req.Username) {
		return chatflow.Errorf(chatflow.ECodeValidation, "username is not valid")
	}
	ctx, me := c.UserContext(), userID(c)
	p, err := s.Queries.GetProfileByUsername(ctx, req.Username)
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "no user %q", req.Username)
	}
	if err != nil {
		return err
	}
	if p.UserID == me {
		return chatflow.Errorf(chatflow.ECodeValidation, "you cannot befriend yourself")
	}
	// a user who blocked the caller receives no friend request from them
	if blocked, err := s.Queries.IsBlocked(ctx, db.IsBlockedParams{UserID: p.UserID, BlockedID: me}); err != nil {
		return err
	} else if blocked {
		return chatflow.Errorf(chatflow.ECodeForbidden, "%s does not accept friend requests from you", req.Username)
	}
	if err := s.Queries.AddFriend(ctx, db.AddFriendParams{UserID: me, FriendID: p.UserID}); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(profileView(p))
}

func (s *Server) removeFriend(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "user_id")
	if err != nil {
		return err
	}
	n, err := s.Queries.RemoveFriend(c.UserContext(), db.RemoveFriendParams{UserID: userID(c), FriendID: id})
	if err != nil {
		return err
	}
	if n == 0 {
		return chatflow.Errorf(chatflow.ECodeNotFound, "not a friend")
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type txView struct {
	TransactionID  string    `json:"transaction_id"`
	Amount         int64     `json:"amount"`
	BalanceAfter   int64     `json:"balance_after"`
	Kind           string    `json:"kind"`
	IdempotencyKey string    `json:"idempotency_key"`
	CreatedAt      time.Time `json:"created_at"`
}

func txOf(t db.CustomerTransaction) txView {
	return txView{TransactionID: t.ID.String(), Amount: t.Amount, BalanceAfter: t.BalanceAfter, Kind: t.Kind,
		IdempotencyKey: t.IdempotencyKey, CreatedAt: t.CreatedAt.UTC()}
}

func (s *Server) deposit(c *fiber.Ctx) error {
	var req struct {
		Amount         int64  `json:"amount"`
		IdempotencyKey string `json:"idempotency_key"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Amount <= 0 || req.Amount > 1_000_000_000 {
		return chatflow.Errorf(chatflow.ECodeValidation, "amount must be 1-1000000000")
	}
	if req.IdempotencyKey == "" || len(req.IdempotencyKey) > 128 || !utf8.ValidString(req.IdempotencyKey) {
		return chatflow.Errorf(chatflow.ECodeValidation, "idempotency_key must be 1-128 characters")
	}
	ctx, me := c.UserContext(), userID(c)
	var out db.CustomerTransaction
	replay := false
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		q := s.Queries.WithTx(tx)
		// Locking the account row serialises deposits of one user, so a
		// repeated key always finds the first transaction.
		acct, err := q.GetAccountForUpdate(ctx, me)
		if isNotFound(err) {
			return chatflow.Errorf(chatflow.ECodeNotFound, "account not found")
		}
		if err != nil {
			return err
		}
		prev, err := q.GetTransactionByKey(ctx, db.GetTransactionByKeyParams{UserID: me, IdempotencyKey: req.IdempotencyKey})
		if err == nil {
			out, replay = prev, true
			return nil
		}
		if !isNotFound(err) {
			return err
		}
		bal, err := q.CreditAccount(ctx, db.CreditAccountParams{UserID: me, Amount: req.Amount})
		if err != nil {
			return err
		}
		_ = acct
		out, err = q.InsertTransaction(ctx, db.InsertTransactionParams{
			ID: uuid.New(), UserID: me, Amount: req.Amount, BalanceAfter: bal, Kind: "deposit", IdempotencyKey: req.IdempotencyKey,
		})
		return err
	})
	if err != nil {
		return err
	}
	if replay {
		if out.Amount != req.Amount {
			return chatflow.Errorf(chatflow.ECodeConflict, "idempotency_key was already used with a different amount")
		}
		c.Set("Idempotent-Replayed", "true")
		return c.Status(fiber.StatusOK).JSON(txOf(out))
	}
	return c.Status(fiber.StatusCreated).JSON(txOf(out))
}

func (s *Server) transactions(c *fiber.Ctx) error {
	limit, has, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	if !has || limit == 0 || limit > 200 {
		limit = 50
	}
	beforeAt, beforeID := time.Now().Add(24*time.Hour), uuid.Max
	if cur := c.Query("cursor"); cur != "" {
		at, id, ok := decodeCursor(cur)
		if !ok {
			return chatflow.Errorf(chatflow.ECodeValidation, "cursor is not valid")
		}
		beforeAt, beforeID = at, id
	}
	rows, err := s.Queries.ListTransactions(c.UserContext(), db.ListTransactionsParams{
		UserID: userID(c), BeforeAt: beforeAt, BeforeID: beforeID, Lim: int32(limit),
	})
	if err != nil {
		return err
	}
	out := make([]txView, len(rows))
	for i, r := range rows {
		out[i] = txOf(r)
	}
	resp := fiber.Map{"transactions": out}
	if len(rows) == int(limit) {
		last := rows[len(rows)-1]
		resp["next_cursor"] = encodeCursor(last.CreatedAt, last.ID)
	}
	return c.JSON(resp)
}

func encodeCursor(at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id.String()))
}

func decodeCursor(s string) (time.Time, uuid.UUID, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, uuid.Nil, false
	}
	ts, ids, ok := strings.Cut(string(raw), "|")
	if !ok {
		return time.Time{}, uuid.Nil, false
	}
	at, err1 := time.Parse(time.RFC3339Nano, ts)
	id, err2 := uuid.Parse(ids)
	return at, id, err1 == nil && err2 == nil
}

func (s *Server) adminStats(c *fiber.Ctx) error {
	ctx := c.UserContext()
	users, err := s.Queries.CountUsers(ctx)
	if err != nil {
		return err
	}
	rooms, err := s.Queries.CountRooms(ctx)
	if err != nil {
		return err
	}
	msgs, err := s.Queries.CountMessages(ctx)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{
		"users": users, "rooms": rooms, "messages": msgs,
		"connections":      s.connectionsAll(ctx),
		"node_connections": s.rt.Metrics().Connections(),
	})
}

// connectionsAll sums the presence counters of every node.
func (s *Server) connectionsAll(ctx context.Context) int64 {
	var total int64
	iter := s.Redis.Scan(ctx, 0, "presence:*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for _, k := range keys {
		n, _ := s.Redis.Get(ctx, k).Int64()
		total += max(n, 0)
	}
	return total
}

func (s *Server) adminSignups(c *fiber.Ctx) error {
	ctx := c.UserContext()
	resp, err := s.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		PageSize: 50,
		// No ORDER BY: SQL visibility stores (the dev server's SQLite, MySQL,
		// Postgres) reject it. They list running executions first, then by
		// close time, newest first; the page is sorted by start time below.
		Query: "WorkflowType = '" + chatflow.WorkflowSignup + "'",
	})
	if err != nil {
		return chatflow.Errorf(chatflow.ECodeUnavailable, "Temporal visibility is not available: %v", err)
	}
	type signupRow struct {
		WorkflowID string     `json:"workflow_id"`
		RunID      string     `json:"run_id"`
		Username   string     `json:"username"`
		Status     string     `json:"status"`
		StartedAt  time.Time  `json:"started_at"`
		ClosedAt   *time.Time `json:"closed_at,omitempty"`
	}
	out := []signupRow{}
	for _, e := range resp.Executions {
		r := signupRow{
			WorkflowID: e.Execution.WorkflowId, RunID: e.Execution.RunId,
			Username:  strings.TrimPrefix(e.Execution.WorkflowId, "signup-"),
			Status:    executionStatus(e.Status),
			StartedAt: e.StartTime.AsTime().UTC(),
		}
		if e.CloseTime != nil && e.CloseTime.IsValid() && e.CloseTime.AsTime().Unix() > 0 {
			t := e.CloseTime.AsTime().UTC()
			r.ClosedAt = &t
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartedAt.After(out[j].StartedAt) })
	return c.JSON(fiber.Map{"signups": out})
}

// executionStatus names a workflow execution status in snake_case
// ("timed_out", "continued_as_new"); the enum's own String is CamelCase.
func executionStatus(st enums.WorkflowExecutionStatus) string {
	switch st {
	case enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "running"
	case enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "completed"
	case enums.WORKFLOW_EXECUTION_STATUS_FAILED:
		return "failed"
	case enums.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return "canceled"
	case enums.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "terminated"
	case enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continued_as_new"
	case enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timed_out"
	default:
		return "unknown"
	}
}
