package api

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// Account deletion: DELETE /me starts the DeleteUser saga
// (workflows/deletion.go); GET /deletions/{id} reports it from
// auth.deletions, which the saga keeps up to date.

// deletionView is a deletion's status.
type deletionView struct {
	DeletionID string     `json:"deletion_id"`
	Status     string     `json:"status"`
	Step       string     `json:"step"`
	ErrorCode  string     `json:"error_code"`
	Error      string     `json:"error"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

func deletionOf(d db.AuthDeletion) deletionView {
	v := deletionView{DeletionID: d.ID.String(), Status: d.Status, Step: d.Step, ErrorCode: d.ErrorCode, Error: d.Error, CreatedAt: d.CreatedAt.UTC()}
	if d.FinishedAt != nil {
		t := d.FinishedAt.UTC()
		v.FinishedAt = &t
	}
	return v
}

func deletionURL(id uuid.UUID) string { return "/api/v1/deletions/" + id.String() }

// deleteMe starts the deletion of the caller's account. The password is
// checked (charged to the login limits, so a stolen token cannot guess it
// faster than a login could), the balance must be zero, and a deletion
// already running answers 409 deletion_in_progress. The user is marked
// 'deleting' (no more logins or refreshes) and the deletion recorded in one
// transaction before the saga starts; a saga that cannot be started undoes
// both.
func (s *Server) deleteMe(c *fiber.Ctx) error {
	var req struct {
		Password string `json:"password"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Password == "" {
		return chatflow.Errorf(chatflow.ECodeValidation, "password is required")
	}
	ctx, me, claims := c.UserContext(), userID(c), claimsOf(c)
	if err := s.limits.Login(ctx, s.clientIP(c), claims.Username); err != nil {
		return err
	}
	u, err := s.Queries.GetUserByID(ctx, me)
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeInvalidToken, "user no longer exists")
	}
	if err != nil {
		return err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(req.Password)) != nil {
		return chatflow.Errorf(chatflow.ECodeInvalidCredentials, "password is wrong")
	}
	if err := deletableStatus(u.Status); err != nil {
		return err
	}
	in := chatflow.DeletionInput{DeletionID: uuid.New(), UserID: me, Username: u.Username, RequestedAt: time.Now().UTC()}
	var d db.AuthDeletion
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		n, err := q.MarkUserDeleting(ctx, me)
		if err != nil {
			return err
		}
		if n == 0 { // changed since it was read
			cur, err := q.GetUserByID(ctx, me)
			if err != nil {
				return err
			}
			if err := deletableStatus(cur.Status); err != nil {
				return err
			}
			return chatflow.Errorf(chatflow.ECodeConflict, "account is %s", cur.Status)
		}
		// The saga checks again (step 4): money may still arrive until the
		// user has left their rooms.
		acct, err := q.GetAccountForUpdate(ctx, me)
		if err != nil && !isNotFound(err) {
			return err
		}
		if err == nil && acct.Balance != 0 {
			return chatflow.Errorf(chatflow.ECodeBalanceNotZero, "the account still holds %d; withdraw it before deleting the account", acct.Balance)
		}
		d, err = q.CreateDeletion(ctx, db.CreateDeletionParams{ID: in.DeletionID, UserID: me, Username: u.Username})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.ConstraintName == "deletions_one_running" {
			return chatflow.Errorf(chatflow.ECodeDeletionInProgress, "a deletion of this account is running")
		}
		return err
	})
	if err != nil {
		return err
	}
	wid := chatflow.DeletionWorkflowID(me, in.DeletionID)
	_, err = s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        wid,
		TaskQueue: s.Cfg.SignupTaskQueue,
		// The id is new each time; a duplicate start can only be a retry.
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// No execution or run timeout: the saga ends by itself, and a
		// timeout would stop it halfway.
		StaticSummary: "account deletion of " + u.Username,
		StaticDetails: "deletion_id `" + in.DeletionID.String() + "`, user_id `" + me.String() + "`",
		Memo:          map[string]any{"deletion_id": in.DeletionID.String()},
	}, chatflow.WorkflowDeleteUser, in)
	if err != nil {
		s.abandonDeletion(context.WithoutCancel(ctx), in, err)
		return chatflow.Errorf(chatflow.ECodeUnavailable, "the deletion could not be started; try again")
	}
	s.Log.Info("account deletion started", "deletion_id", in.DeletionID, "user_id", me, "workflow_id", wid)
	url := deletionURL(in.DeletionID)
	c.Location(url)
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{
		"deletion_id": d.ID.String(), "status": chatflow.StatusRunning, "status_url": url,
	})
}

// deletableStatus refuses a deletion of an account in status st.
func deletableStatus(st string) error {
	switch st {
	case "active":
		return nil
	case "deleting":
		return chatflow.Errorf(chatflow.ECodeDeletionInProgress, "a deletion of this account is running")
	case "disabled":
		return chatflow.Errorf(chatflow.ECodeAccountDisabled, "the account is disabled")
	}
	return chatflow.Errorf(chatflow.ECodeConflict, "account is %s", st)
}

// abandonDeletion undoes what deleteMe did before a saga start that
// failed: the deletion is recorded as failed and the user is active again.
// Should the start have happened after all, the saga's first step finds
// its deletion failed and stops without touching anything.
func (s *Server) abandonDeletion(ctx context.Context, in chatflow.DeletionInput, cause error) {
	s.Log.Warn("account deletion not started", "deletion_id", in.DeletionID, "user_id", in.UserID, "error", cause)
	if _, err := s.Queries.FailDeletion(ctx, db.FailDeletionParams{
		ID: in.DeletionID, ErrorCode: chatflow.ECodeUnavailable, Error: "the deletion saga could not be started",
	}); err != nil {
		s.Log.Error("record an account deletion that did not start", "deletion_id", in.DeletionID, "error", err)
	}
	if _, err := s.Queries.ReactivateDeletingUser(ctx, db.ReactivateDeletingUserParams{ID: in.UserID, DeletionID: in.DeletionID}); err != nil {
		s.Log.Error("reactivate a user whose deletion did not start", "user_id", in.UserID, "error", err)
	}
}

// deletionStatus answers a deletion's status. It needs no token (the
// user's are revoked by the saga's first step): the deletion id, a random
// UUID only the caller was told, is the capability, as a signup_id is.
// ?wait=10s (at most 30 s) holds the answer until the saga ends.
func (s *Server) deletionStatus(c *fiber.Ctx) error {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return chatflow.Errorf(chatflow.ECodeNotFound, "no deletion %q", c.Params("id"))
	}
	ctx := c.UserContext()
	d, err := s.Queries.GetDeletion(ctx, id)
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "no deletion %q", id)
	}
	if err != nil {
		return err
	}
	if w := c.Query("wait"); w != "" {
		wait, err := time.ParseDuration(w)
		if err != nil || wait < 0 {
			return chatflow.Errorf(chatflow.ECodeValidation, "wait must be a duration such as 5s")
		}
		if d.Status == chatflow.StatusRunning && wait > 0 {
			wctx, cancel := context.WithTimeout(ctx, min(wait, 30*time.Second))
			// Ends when the saga does (its last act records the outcome);
			// a failed saga's error is expected and says nothing more.
			_ = s.Temporal.GetWorkflow(wctx, chatflow.DeletionWorkflowID(d.UserID, d.ID), "").Get(wctx, nil)
			cancel()
			if d, err = s.Queries.GetDeletion(ctx, id); err != nil {
				return err
			}
		}
	}
	return c.JSON(deletionOf(d))
}
