package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/workflows"
)

var errNoRows = pgx.ErrNoRows

// signupRef maps a public signup_id to its workflow run; kept in Redis for a week.
type signupRef struct {
	WorkflowID string    `json:"wid"`
	RunID      string    `json:"rid"`
	Username   string    `json:"username"`
	CreatedAt  time.Time `json:"created_at"`
}

const signupRefTTL = 7 * 24 * time.Hour

func signupKey(id string) string { return "signup:" + id }

func (s *Server) signup(c *fiber.Ctx) error {
	var req chatflow.SignupRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	req.Normalize()
	if err := req.Validate(); err != nil {
		return err
	}
	ctx := c.UserContext()
	taken, err := s.Queries.UsernameOrEmailExists(ctx, db.UsernameOrEmailExistsParams{Username: req.Username, Email: req.Email})
	if err != nil {
		return err
	}
	if taken.UsernameTaken {
		return chatflow.Errorf(chatflow.ECodeUsernameTaken, "username %q is already registered", req.Username)
	}
	if taken.EmailTaken {
		return chatflow.Errorf(chatflow.ECodeEmailTaken, "email is already registered")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(req.Password), s.Cfg.BcryptCost)
	if err != nil {
		return err
	}
	in := activities.SignupInput{
		SignupID: uuid.NewString(), UserID: uuid.New(), Username: req.Username, Email: req.Email,
		PasswordHash: string(hash), DisplayName: req.DisplayName, RequestedAt: time.Now().UTC(),
	}
	run, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        workflows.SignupWorkflowID(req.Username),
		TaskQueue: s.Cfg.SignupTaskQueue,
		// A failed sign-up frees the name; a running or completed one keeps it.
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without this the SDK swallows "already started" and hands back the
		// other sign-up's run, so every concurrent duplicate would get a 202.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		WorkflowExecutionTimeout:                 10 * time.Minute,
		StaticSummary:                            "sign-up of " + req.Username,
		StaticDetails:                            "signup_id `" + in.SignupID + "`, user_id `" + in.UserID.String() + "`",
		Memo:                                     map[string]any{"signup_id": in.SignupID},
	}, workflows.Signup, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return chatflow.Errorf(chatflow.ECodeUsernameTaken, "username %q is already registered", req.Username)
	}
	if err != nil {
		return err
	}
	ref, _ := json.Marshal(signupRef{WorkflowID: run.GetID(), RunID: run.GetRunID(), Username: req.Username, CreatedAt: in.RequestedAt})
	if err := s.Redis.Set(ctx, signupKey(in.SignupID), ref, signupRefTTL).Err(); err != nil {
		return err
	}
	s.metrics.signupsStarted.Inc()
	c.Location("/api/v1/signup/" + in.SignupID)
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"signup_id": in.SignupID, "status": chatflow.StatusRunning})
}

func (s *Server) signupStatus(c *fiber.Ctx) error {
	id := c.Params("id")
	if _, err := uuid.Parse(id); err != nil {
		return chatflow.Errorf(chatflow.ECodeNotFound, "no sign-up %q", id)
	}
	ctx := c.UserContext()
	raw, err := s.Redis.Get(ctx, signupKey(id)).Bytes()
	if err != nil {
		return chatflow.Errorf(chatflow.ECodeNotFound, "no sign-up %q", id)
	}
	var ref signupRef
	if err := json.Unmarshal(raw, &ref); err != nil {
		return err
	}
	if w := c.Query("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 {
			return chatflow.Errorf(chatflow.ECodeValidation, "wait must be a duration such as 5s")
		}
		if d > 30*time.Second {
			d = 30 * time.Second
		}
		wctx, cancel := context.WithTimeout(ctx, d)
		_ = s.Temporal.GetWorkflow(wctx, ref.WorkflowID, ref.RunID).Get(wctx, nil) // outcome comes from the query
		cancel()
	}
	p, err := s.signupProgress(ctx, ref)
	if err != nil {
		return err
	}
	p.SignupID = id
	return c.JSON(p)
}

// signupProgress asks the workflow for its step statuses. A query needs a
// worker with a free slot; when none answers in time (a sign-up storm, or
// no worker running) the status comes from what the server itself records.
func (s *Server) signupProgress(ctx context.Context, ref signupRef) (chatflow.SignupProgress, error) {
	var p chatflow.SignupProgress
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	v, err := s.Temporal.QueryWorkflow(qctx, ref.WorkflowID, ref.RunID, workflows.QueryProgress)
	cancel()
	if err == nil && v.Get(&p) == nil {
		return p, nil
	}
	return s.signupFromHistory(ctx, ref)
}

// signupFromHistory derives the progress from the execution's status and,
// once it has ended, its result or failure (which carries the progress).
func (s *Server) signupFromHistory(ctx context.Context, ref signupRef) (chatflow.SignupProgress, error) {
	p := chatflow.SignupProgress{Status: chatflow.StatusRunning}
	for _, name := range chatflow.SignupSteps {
		p.Steps = append(p.Steps, chatflow.StepStatus{Name: name, Status: chatflow.StatusPending})
	}
	d, err := s.Temporal.DescribeWorkflowExecution(ctx, ref.WorkflowID, ref.RunID)
	if err != nil {
		return p, chatflow.Errorf(chatflow.ECodeUnavailable, "sign-up status is not available right now: %v", err)
	}
	switch d.WorkflowExecutionInfo.GetStatus() {
	case enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return p, nil
	case enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		var res workflows.SignupResult
		if err := s.Temporal.GetWorkflow(ctx, ref.WorkflowID, ref.RunID).Get(ctx, &res); err != nil {
			return p, err
		}
		p.Status, p.UserID = chatflow.StatusCompleted, res.UserID
		for i := range p.Steps {
			p.Steps[i].Status = chatflow.StatusCompleted
		}
		return p, nil
	}
	werr := s.Temporal.GetWorkflow(ctx, ref.WorkflowID, ref.RunID).Get(ctx, nil)
	var app *temporal.ApplicationError
	if errors.As(werr, &app) && app.HasDetails() && app.Details(&p) == nil {
		return p, nil
	}
	p.Status = chatflow.StatusFailed
	p.ErrorCode = chatflow.ECodeInternal
	if werr != nil {
		p.Error = werr.Error()
	}
	return p, nil
}
