package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// signupRef maps a public signup_id to its workflow run; kept in Redis for a week.
type signupRef struct {
	WorkflowID string    `json:"wid"`
	RunID      string    `json:"rid"`
	Username   string    `json:"username"`
	CreatedAt  time.Time `json:"created_at"`
}

const signupRefTTL = 7 * 24 * time.Hour

func signupKey(id string) string { return "signup:" + id }

// SignupFinalKey is the Redis key of a sign-up's final status (its
// SignupProgress once the saga has ended). The status endpoint writes it the
// first time it sees the saga ended and answers from it from then on, so an
// ended sign-up costs Temporal nothing (no query, no history read). It lives
// as long as the signup_id itself.
func SignupFinalKey(id string) string { return "signup:" + id + ":final" }

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
	// Before any lookup or hash: each sign-up costs a bcrypt and a saga.
	if err := s.limits.Signup(ctx, s.clientIP(c)); err != nil {
		return err
	}
	if err := s.signupAvailable(ctx, req.Username, req.Email); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(req.Password), s.Cfg.BcryptCost)
	if err != nil {
		return err
	}
	signupID := uuid.New()
	in := chatflow.SignupInput{
		SignupID: signupID.String(), UserID: uuid.New(), Username: req.Username,
		DisplayName: req.DisplayName, RequestedAt: time.Now().UTC(),
	}
	// The hash and the email never enter the saga's input (Temporal history
	// shows inputs to whoever opens the Web UI): they wait in Postgres for
	// the saga's first step.
	if err := s.Queries.StageSignupSecrets(ctx, db.StageSignupSecretsParams{
		SignupID: signupID, UserID: in.UserID, Email: req.Email, PasswordHash: string(hash),
	}); err != nil {
		return err
	}
	s.purgeSignupSecrets(ctx)
	run, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        chatflow.SignupWorkflowID(req.Username),
		TaskQueue: s.Cfg.SignupTaskQueue,
		// Any ended sign-up lets the id run again: a completed one too,
		// since its user may have been deleted since (the deletion saga frees
		// the username). A user who holds the name is refused by Postgres
		// (signupAvailable above, and the saga's first step).
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without this the SDK swallows "already started" and hands back the
		// other sign-up's run, so every concurrent duplicate would get a 202.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// No execution or run timeout, on purpose: the server would end the
		// saga in the middle, and its compensations would never run. The saga
		// ends by itself: forward steps retry a bounded time, compensations
		// until they are done.
		StaticSummary: "sign-up of " + req.Username,
		StaticDetails: "signup_id `" + in.SignupID + "`, user_id `" + in.UserID.String() + "`",
		Memo:          map[string]any{"signup_id": in.SignupID},
	}, chatflow.WorkflowSignup, in)
	if err != nil {
		// No saga will read them. (Should the start have happened after all,
		// its first step finds nothing and ends the sign-up as expired.)
		if _, derr := s.Queries.DeleteSignupSecrets(context.WithoutCancel(ctx), in.UserID); derr != nil {
			s.Log.Warn("sign-up secrets of a saga that did not start", "signup_id", in.SignupID, "error", derr)
		}
	}
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

// SignupSecretsTTL is how long staged sign-up secrets wait for their saga's
// first step: older ones belong to a saga that ended before it (terminated)
// and are purged; a saga whose first step comes later ends as expired.
const SignupSecretsTTL = 24 * time.Hour

// purgeSignupSecrets deletes staged secrets older than SignupSecretsTTL; a
// failure only delays it to the next sign-up.
func (s *Server) purgeSignupSecrets(ctx context.Context) {
	if n, err := s.Queries.PurgeSignupSecrets(ctx, time.Now().Add(-SignupSecretsTTL)); err != nil {
		s.Log.Warn("purge sign-up secrets", "error", err)
	} else if n > 0 {
		s.Log.Info("purged the staged secrets of sign-ups that never ran", "count", n)
	}
}

// signupAvailable refuses a username or email held by a user (active) or by a
// sign-up still running, before a saga starts. Credentials still pending
// whose saga has ended (terminated, timed out: it could not compensate) hold
// nothing any more: they are removed here, with their profile and account,
// and the sign-up goes ahead.
func (s *Server) signupAvailable(ctx context.Context, username, email string) error {
	holders, err := s.Queries.SignupHolders(ctx, db.SignupHoldersParams{Username: username, Email: email})
	if err != nil {
		return err
	}
	usernameTaken, emailTaken := false, false
	for _, h := range holders {
		if h.Status == "pending" {
			ended, err := s.signupEnded(ctx, h.Username)
			if err != nil {
				return err
			}
			if ended {
				if n, err := s.Queries.DeleteStaleSignup(ctx, h.ID); err != nil {
					return err
				} else if n > 0 {
					s.Log.Warn("removed the pending leftovers of an ended sign-up", "username", h.Username, "user_id", h.ID)
				}
				continue
			}
		}
		usernameTaken = usernameTaken || h.Username == username
		emailTaken = emailTaken || h.Email == email
	}
	if usernameTaken {
		return chatflow.Errorf(chatflow.ECodeUsernameTaken, "username %q is already registered", username)
	}
	if emailTaken {
		return chatflow.Errorf(chatflow.ECodeEmailTaken, "email is already registered")
	}
	return nil
}

// signupEnded reports whether the latest sign-up saga of username has ended
// without completing, or is unknown to Temporal (its history is gone): its
// pending credentials then belong to no running saga.
func (s *Server) signupEnded(ctx context.Context, username string) (bool, error) {
	d, err := s.Temporal.DescribeWorkflowExecution(ctx, chatflow.SignupWorkflowID(username), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return true, nil
	}
	if err != nil {
		return false, chatflow.Errorf(chatflow.ECodeUnavailable, "sign-up state is not available right now: %v", err)
	}
	switch d.GetWorkflowExecutionInfo().GetStatus() {
	case enums.WORKFLOW_EXECUTION_STATUS_FAILED, enums.WORKFLOW_EXECUTION_STATUS_TERMINATED,
		enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, enums.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return true, nil
	}
	return false, nil
}

func (s *Server) signupStatus(c *fiber.Ctx) error {
	id := c.Params("id")
	if _, err := uuid.Parse(id); err != nil {
		return chatflow.Errorf(chatflow.ECodeNotFound, "no sign-up %q", id)
	}
	ctx := c.UserContext()
	if p, ok := s.cachedSignup(ctx, id); ok {
		return c.JSON(p)
	}
	raw, err := s.Redis.Get(ctx, signupKey(id)).Bytes()
	if err != nil {
		return chatflow.Errorf(chatflow.ECodeNotFound, "no sign-up %q", id)
	}
	var ref signupRef
	if err := json.Unmarshal(raw, &ref); err != nil {
		return err
	}
	var p chatflow.SignupProgress
	ended := false
	if w := c.Query("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 {
			return chatflow.Errorf(chatflow.ECodeValidation, "wait must be a duration such as 5s")
		}
		if d > 30*time.Second {
			d = 30 * time.Second
		}
		wctx, cancel := context.WithTimeout(ctx, d)
		var res chatflow.SignupResult
		werr := s.Temporal.GetWorkflow(wctx, ref.WorkflowID, ref.RunID).Get(wctx, &res)
		if wctx.Err() == nil {
			p, ended = s.signupOutcome(ctx, ref, res, werr)
		}
		cancel()
	}
	if !ended {
		if p, ended, err = s.signupProgress(ctx, ref); err != nil {
			return err
		}
	}
	p.SignupID = id
	if ended {
		s.cacheSignup(ctx, id, p)
	}
	return c.JSON(p)
}

// cachedSignup returns the final status of an ended sign-up, if recorded.
func (s *Server) cachedSignup(ctx context.Context, id string) (chatflow.SignupProgress, bool) {
	var p chatflow.SignupProgress
	raw, err := s.Redis.Get(ctx, SignupFinalKey(id)).Bytes()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			s.Log.Warn("sign-up status cache", "signup_id", id, "error", err)
		}
		return p, false
	}
	if err := json.Unmarshal(raw, &p); err != nil || !p.Ended() {
		return p, false
	}
	return p, true
}

// cacheSignup records the final status of an ended sign-up; a failure only
// costs the next reader a trip to Temporal.
func (s *Server) cacheSignup(ctx context.Context, id string, p chatflow.SignupProgress) {
	if !p.Ended() {
		return
	}
	raw, err := json.Marshal(p)
	if err == nil {
		err = s.Redis.Set(ctx, SignupFinalKey(id), raw, signupRefTTL).Err()
	}
	if err != nil {
		s.Log.Warn("sign-up status cache", "signup_id", id, "error", err)
	}
}

// signupProgress reads a sign-up's progress and whether it is final. A saga
// that has ended answers from its history (its result or failure carries the
// final progress); a running one answers its progress query. A query needs a
// worker with a free slot; when none answers in time (a sign-up storm, or no
// worker running) a running saga reports its steps as pending.
func (s *Server) signupProgress(ctx context.Context, ref signupRef) (chatflow.SignupProgress, bool, error) {
	d, err := s.Temporal.DescribeWorkflowExecution(ctx, ref.WorkflowID, ref.RunID)
	if err != nil {
		return chatflow.SignupProgress{}, false, chatflow.Errorf(chatflow.ECodeUnavailable, "sign-up status is not available right now: %v", err)
	}
	if d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		var res chatflow.SignupResult
		werr := s.Temporal.GetWorkflow(ctx, ref.WorkflowID, ref.RunID).Get(ctx, &res)
		if ctx.Err() != nil {
			return chatflow.SignupProgress{}, false, ctx.Err()
		}
		p, ended := s.signupOutcome(ctx, ref, res, werr)
		return p, ended, nil
	}
	if p, ok := s.queryProgress(ctx, ref); ok {
		return p, p.Ended(), nil
	}
	return pendingProgress(), false, nil
}

// queryProgress asks the saga for its progress, for up to 3 seconds.
func (s *Server) queryProgress(ctx context.Context, ref signupRef) (chatflow.SignupProgress, bool) {
	var p chatflow.SignupProgress
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	v, err := s.Temporal.QueryWorkflow(qctx, ref.WorkflowID, ref.RunID, chatflow.QuerySignupProgress)
	if err != nil || v.Get(&p) != nil || len(p.Steps) == 0 {
		return p, false
	}
	return p, true
}

func pendingProgress() chatflow.SignupProgress {
	p := chatflow.SignupProgress{Status: chatflow.StatusRunning}
	for _, name := range chatflow.SignupSteps {
		p.Steps = append(p.Steps, chatflow.StepStatus{Name: name, Status: chatflow.StatusPending})
	}
	return p
}

// signupOutcome turns the outcome of an ended saga (its result, or the error
// its run ended with) into its final progress. ended is false when werr says
// nothing about the saga (Temporal could not be asked).
func (s *Server) signupOutcome(ctx context.Context, ref signupRef, res chatflow.SignupResult, werr error) (p chatflow.SignupProgress, ended bool) {
	if werr == nil {
		if res.Progress != nil && res.Progress.Status == chatflow.StatusCompleted {
			return *res.Progress, true
		}
		// A saga from before the result carried its progress.
		p = pendingProgress()
		p.Status, p.UserID = chatflow.StatusCompleted, res.UserID
		for i := range p.Steps {
			p.Steps[i].Status = chatflow.StatusCompleted
		}
		return p, true
	}
	var app *temporal.ApplicationError
	if errors.As(werr, &app) && app.HasDetails() && app.Details(&p) == nil && p.Status == chatflow.StatusFailed {
		return p, true
	}
	var wee *temporal.WorkflowExecutionError
	if !errors.As(werr, &wee) {
		return p, false // not the saga's outcome: Temporal is unreachable, say
	}
	// Terminated, timed out or cancelled from outside: the saga could not
	// record its end. Its last progress (one replay, once: the answer is
	// cached) tells how far it got; whatever it left pending is removed by
	// the next sign-up that needs the username or email.
	p, ok := s.queryProgress(ctx, ref)
	if !ok {
		p = pendingProgress()
	}
	p.Status = chatflow.StatusFailed
	p.ErrorCode = chatflow.ECodeInternal
	p.Error = wee.Error()
	if cause := errors.Unwrap(wee); cause != nil {
		p.Error = cause.Error() // "terminated", "workflow timeout", ...
	}
	return p, true
}
