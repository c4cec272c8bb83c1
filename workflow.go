package chatflow

import (
	"time"

	"github.com/google/uuid"
)

// Workflow payloads: what the api starts the sign-up saga with and what the
// saga answers. They live here, in the root package, so that the api, the
// workflows and the activities share them without importing each other.

// WorkflowSignup is the registered name of the sign-up saga and
// QuerySignupProgress the name of its query that answers a SignupProgress;
// api nodes use the names, so they do not link the worker code.
const (
	WorkflowSignup      = "Signup"
	QuerySignupProgress = "progress"
)

// SignupWorkflowID derives the sign-up saga's workflow ID from the username,
// which makes a second concurrent sign-up for the same name impossible: at
// most one run of an ID is open, so a saga that finds its username held by
// someone else's pending credentials knows that sign-up has ended.
func SignupWorkflowID(username string) string { return "signup-" + username }

// SignupInput is the sign-up saga's input. It lands in Temporal history, so
// it holds no credential material and no email: the api stages the email
// and the password hash in auth.signup_secrets, keyed by SignupID, and the
// saga's first step reads them from there.
type SignupInput struct {
	SignupID string    `json:"signup_id"`
	UserID   uuid.UUID `json:"user_id"`
	Username string    `json:"username"`
	// Email and PasswordHash are only set in the inputs of sagas started
	// before the secrets were staged (their histories still hold them); the
	// activities use them when present. The api never sets them.
	Email        string    `json:"email,omitempty"`
	PasswordHash string    `json:"password_hash,omitempty"`
	DisplayName  string    `json:"display_name"`
	RequestedAt  time.Time `json:"requested_at"`
}

// Staged reports whether the saga's secrets wait in auth.signup_secrets
// (every sign-up the api starts) rather than in the input itself.
func (in SignupInput) Staged() bool { return in.PasswordHash == "" }

// SignupResult is what a completed sign-up saga returns. Progress is the
// saga's final progress (absent in results of sagas that ran before it was
// added), so a reader of the result needs no query.
type SignupResult struct {
	UserID   string          `json:"user_id"`
	Progress *SignupProgress `json:"progress,omitempty"`
}

// StatusCompensationFailed is the status of a saga step whose compensation
// gave up (a non-retryable error): the step's effect may still be there.
const StatusCompensationFailed = "compensation_failed"

// Ended reports whether a sign-up's progress is final (completed or failed).
func (p SignupProgress) Ended() bool {
	return p.Status == StatusCompleted || p.Status == StatusFailed
}
