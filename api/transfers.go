package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// Transfers between two members of a room. The api checks the request,
// records the transfer (pending) in customer.transfers and starts the
// transfer saga (workflows/transfer.go), which moves the money, posts the
// transfer message into the room and records the outcome on the row; the
// status route reads the row. The row is written before the saga starts,
// so a start that fails (Temporal away) is redone by the sender's retry
// with the same idempotency key, or by a status read.

type transferView struct {
	TransferID string `json:"transfer_id"`
	Status     string `json:"status"`
	FromUserID string `json:"from_user_id"`
	ToUserID   string `json:"to_user_id"`
	RoomID     string `json:"room_id"`
	Amount     int64  `json:"amount"`
	Memo       string `json:"memo"`
	// IdempotencyKey is the sender's; only the sender sees it.
	IdempotencyKey string     `json:"idempotency_key,omitempty"`
	MessageSeq     *int64     `json:"message_seq,omitempty"`
	ErrorCode      string     `json:"error_code,omitempty"`
	Error          string     `json:"error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	FinishedAt     *time.Time `json:"finished_at,omitempty"`
}

func transferOf(t db.CustomerTransfer, viewer uuid.UUID) transferView {
	v := transferView{
		TransferID: t.ID.String(), Status: t.Status, FromUserID: t.FromID.String(), ToUserID: t.ToID.String(),
		RoomID: t.RoomID.String(), Amount: t.Amount, Memo: t.Memo, MessageSeq: t.MessageSeq,
		ErrorCode: t.ErrorCode, Error: t.Error, CreatedAt: t.CreatedAt.UTC(),
	}
	if viewer == t.FromID {
		v.IdempotencyKey = t.IdempotencyKey
	}
	if t.FinishedAt != nil {
		at := t.FinishedAt.UTC()
		v.FinishedAt = &at
	}
	return v
}

type transferRequest struct {
	ToUserID       string `json:"to_user_id"`
	Amount         int64  `json:"amount"`
	IdempotencyKey string `json:"idempotency_key"`
	Memo           string `json:"memo"`
}

func (s *Server) createTransfer(c *fiber.Ctx) error {
	room, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	var req transferRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	to, err := uuid.Parse(req.ToUserID)
	if err != nil {
		return chatflow.Errorf(chatflow.ECodeValidation, "to_user_id must be a user id")
	}
	if err := chatflow.ValidAmount(req.Amount); err != nil {
		return err
	}
	if err := chatflow.ValidIdempotencyKey(req.IdempotencyKey); err != nil {
		return err
	}
	if err := chatflow.ValidMemo(req.Memo); err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	if to == me {
		return chatflow.Errorf(chatflow.ECodeCannotAddSelf, "you cannot transfer to yourself")
	}
	// A key used before answers with its transfer, even if the sender has
	// left the room since.
	if prev, err := s.Queries.GetTransferByKey(ctx, db.GetTransferByKeyParams{FromID: me, IdempotencyKey: req.IdempotencyKey}); err == nil {
		return s.replayTransfer(c, prev, room, to, req)
	} else if !isNotFound(err) {
		return err
	}
	if _, err := s.membership(ctx, room, me); err != nil {
		return err
	}
	if ok, err := s.Queries.IsMember(ctx, db.IsMemberParams{RoomID: room, UserID: to}); err != nil {
		return err
	} else if !ok {
		return chatflow.Errorf(chatflow.ECodeNotMember, "user %s is not a member of room %s", to, room)
	}
	t, err := s.Queries.InsertTransfer(ctx, db.InsertTransferParams{
		ID: uuid.New(), FromID: me, ToID: to, RoomID: room, Amount: req.Amount, Memo: req.Memo, IdempotencyKey: req.IdempotencyKey,
	})
	if isNotFound(err) { // a concurrent request with the same key won
		prev, err := s.Queries.GetTransferByKey(ctx, db.GetTransferByKeyParams{FromID: me, IdempotencyKey: req.IdempotencyKey})
		if err != nil {
			return err
		}
		return s.replayTransfer(c, prev, room, to, req)
	}
	if err != nil {
		return err
	}
	if err := s.startTransfer(ctx, t); err != nil {
		return err
	}
	c.Location("/api/v1/transfers/" + t.ID.String())
	return c.Status(fiber.StatusAccepted).JSON(transferOf(t, me))
}

// replayTransfer answers a repeated idempotency key: the same transfer
// again (its saga started once more if it is still pending, which a start
// that failed needs), or a conflict if the key named another transfer.
func (s *Server) replayTransfer(c *fiber.Ctx, t db.CustomerTransfer, room, to uuid.UUID, req transferRequest) error {
	if t.RoomID != room || t.ToID != to || t.Amount != req.Amount || t.Memo != req.Memo {
		return chatflow.Errorf(chatflow.ECodeConflict, "idempotency_key was already used for another transfer (%s)", t.ID)
	}
	if t.Status == chatflow.StatusPending {
		if err := s.startTransfer(c.UserContext(), t); err != nil {
			return err
		}
	}
	c.Set("Idempotent-Replayed", "true")
	c.Location("/api/v1/transfers/" + t.ID.String())
	return c.Status(fiber.StatusOK).JSON(transferOf(t, userID(c)))
}

// startTransfer starts the transfer's saga under its deterministic id; a
// saga already started (or ended) under that id is left alone.
func (s *Server) startTransfer(ctx context.Context, t db.CustomerTransfer) error {
	in := chatflow.TransferInput{
		TransferID: t.ID, FromID: t.FromID, ToID: t.ToID, RoomID: t.RoomID, Amount: t.Amount, Memo: t.Memo,
		RequestedAt: t.CreatedAt.UTC(),
	}
	_, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       chatflow.TransferWorkflowID(t.ID),
		TaskQueue:                                s.Cfg.SignupTaskQueue,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// No timeouts: the saga ends by itself, and a server-side timeout
		// would cut it between a debit and its refund.
		StaticSummary: fmt.Sprintf("transfer of %d from %s to %s", t.Amount, s.username(ctx, t.FromID), s.username(ctx, t.ToID)),
		StaticDetails: fmt.Sprintf("transfer_id `%s`, room `%s`, from `%s`, to `%s`", t.ID, t.RoomID, t.FromID, t.ToID),
		Memo:          map[string]any{"transfer_id": t.ID.String()},
	}, chatflow.WorkflowTransfer, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil
	}
	if err != nil {
		s.Log.Warn("transfer saga did not start", "transfer_id", t.ID, "error", err)
		return chatflow.Errorf(chatflow.ECodeUnavailable, "transfer %s is recorded but could not start; retry with the same idempotency_key", t.ID)
	}
	return nil
}

// username names a user for the Web UI's summary; the id if it cannot.
func (s *Server) username(ctx context.Context, id uuid.UUID) string {
	if p, err := s.Queries.GetProfile(ctx, id); err == nil {
		return p.Username
	}
	return id.String()
}

// transferStatus answers a transfer's state to either of its two parties
// (anyone else gets 404); ?wait= long-polls, up to 30 s, until it ends.
func (s *Server) transferStatus(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "transfer_id")
	if err != nil {
		return err
	}
	var wait time.Duration
	if w := c.Query("wait"); w != "" {
		if wait, err = time.ParseDuration(w); err != nil || wait < 0 {
			return chatflow.Errorf(chatflow.ECodeValidation, "wait must be a duration such as 10s")
		}
		wait = min(wait, 30*time.Second)
	}
	ctx, me := c.UserContext(), userID(c)
	t, err := s.Queries.GetTransfer(ctx, id)
	if err == nil && me != t.FromID && me != t.ToID {
		err = chatflow.Errorf(chatflow.ECodeNotFound, "no transfer %s", id)
	}
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "no transfer %s", id)
	}
	if err != nil {
		return err
	}
	if t.Status == chatflow.StatusPending && wait > 0 {
		s.awaitTransfer(ctx, t, wait)
		if t, err = s.Queries.GetTransfer(ctx, id); err != nil {
			return err
		}
	}
	return c.JSON(transferOf(t, me))
}

// awaitTransfer waits up to d for the transfer's saga to end (it records
// the outcome on the row before it ends). A saga Temporal does not know is
// started: its start failed after the row was written.
func (s *Server) awaitTransfer(ctx context.Context, t db.CustomerTransfer, d time.Duration) {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for try := 0; try < 2; try++ {
		err := s.Temporal.GetWorkflow(wctx, chatflow.TransferWorkflowID(t.ID), "").Get(wctx, nil)
		var nf *serviceerror.NotFound
		if try > 0 || !errors.As(err, &nf) || s.startTransfer(wctx, t) != nil {
			return
		}
	}
}

// myTransfers lists the transfers the caller sent or received, newest
// first, cursor paged.
func (s *Server) myTransfers(c *fiber.Ctx) error {
	limit, err := pageLimit(c, 50, 200)
	if err != nil {
		return err
	}
	if err := chatflow.ValidCursor("cursor", c.Query("cursor")); err != nil {
		return err
	}
	beforeAt, beforeID := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), uuid.Max
	if cur := c.Query("cursor"); cur != "" {
		var ok bool
		if beforeAt, beforeID, ok = decodeTransferCursor(cur); !ok {
			return chatflow.Errorf(chatflow.ECodeValidation, "cursor is not valid")
		}
	}
	me := userID(c)
	rows, err := s.Queries.ListUserTransfers(c.UserContext(), db.ListUserTransfersParams{
		UserID: me, BeforeAt: beforeAt, BeforeID: beforeID, Lim: int32(limit),
	})
	if err != nil {
		return err
	}
	out := make([]transferView, len(rows))
	for i, r := range rows {
		out[i] = transferOf(r, me)
	}
	resp := fiber.Map{"transfers": out}
	if len(rows) == int(limit) {
		last := rows[len(rows)-1]
		resp["next_cursor"] = base64.RawURLEncoding.EncodeToString([]byte(last.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + last.ID.String()))
	}
	return c.JSON(resp)
}

// decodeTransferCursor reads "<created_at>|<id>" (base64url), the position
// to continue below.
func decodeTransferCursor(s string) (time.Time, uuid.UUID, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, uuid.Nil, false
	}
	at, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return time.Time{}, uuid.Nil, false
	}
	t, err1 := time.Parse(time.RFC3339Nano, at)
	u, err2 := uuid.Parse(id)
	return t, u, err1 == nil && err2 == nil
}
