package activities

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// stagedInput is a sign-up as the api starts it now: the saga's input has
// neither email nor hash; both wait in auth.signup_secrets.
func stagedInput(t *testing.T, a *Activities) (in chatflow.SignupInput, email, hash string) {
	t.Helper()
	legacy := newInput()
	in = legacy
	in.Email, in.PasswordHash = "", ""
	if err := a.Queries.StageSignupSecrets(context.Background(), db.StageSignupSecretsParams{
		SignupID: uuid.MustParse(in.SignupID), UserID: in.UserID, Email: legacy.Email, PasswordHash: legacy.PasswordHash,
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = a.Queries.DeleteSignupSecrets(context.Background(), in.UserID) })
	return in, legacy.Email, legacy.PasswordHash
}

func stagedRows(t *testing.T, a *Activities, userID uuid.UUID) int {
	t.Helper()
	var n int
	if err := a.Pool.QueryRow(context.Background(), `SELECT count(*) FROM auth.signup_secrets WHERE user_id = $1`, userID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantVerdict(t *testing.T, err error, code string) {
	t.Helper()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() || app.Type() != code {
		t.Fatalf("got %v, want a non-retryable %s", err, code)
	}
}

// TestStagedSecretsCompletedSignup: the first step stores the staged email
// and hash; user.created carries the email read back from the credentials;
// activation removes the staged row.
func TestStagedSecretsCompletedSignup(t *testing.T) {
	a, pub := testActivities(t)
	ctx := context.Background()
	in, email, hash := stagedInput(t, a)
	forward(t, a, in)
	u, err := a.Queries.GetUserByID(ctx, in.UserID)
	if err != nil || u.Email != email || u.PasswordHash != hash {
		t.Fatalf("credentials from staged secrets: %+v %v", u, err)
	}
	if err := a.CreateCredentials(ctx, in); err != nil { // a retry after a lost answer
		t.Fatalf("retried first step: %v", err)
	}
	if err := a.PublishUserCreated(ctx, in); err != nil {
		t.Fatal(err)
	}
	var ev chatflow.UserCreated
	if err := json.Unmarshal(pub.recs[0].Value, &ev); err != nil || ev.Email != email {
		t.Fatalf("user.created without the email: %s", pub.recs[0].Value)
	}
	if stagedRows(t, a, in.UserID) != 1 {
		t.Fatal("staged row gone before activation")
	}
	if err := a.ActivateUser(ctx, in.UserID); err != nil {
		t.Fatal(err)
	}
	if n := stagedRows(t, a, in.UserID); n != 0 {
		t.Fatalf("%d staged rows after activation", n)
	}
}

// TestStagedSecretsCompensatedSignup: the last compensation removes the
// staged row with the credentials.
func TestStagedSecretsCompensatedSignup(t *testing.T) {
	a, _ := testActivities(t)
	in, _, _ := stagedInput(t, a)
	forward(t, a, in)
	compensate(t, a, in)
	if u, p, ac := counts(t, a, in.UserID); u+p+ac != 0 || stagedRows(t, a, in.UserID) != 0 {
		t.Fatalf("after compensation: users %d profiles %d accounts %d staged %d", u, p, ac, stagedRows(t, a, in.UserID))
	}
}

// TestStagedSecretsVerdict: a first step that ends the saga with a verdict
// (the email is taken) removes the staged row, since no compensation runs;
// a first step that finds no staged row (purged, never staged) ends the
// sign-up as expired.
func TestStagedSecretsVerdict(t *testing.T) {
	a, _ := testActivities(t)
	ctx := context.Background()
	first, email, _ := stagedInput(t, a)
	forward(t, a, first)
	t.Cleanup(func() { compensate(t, a, first) })

	second := newInput()
	second.Email, second.PasswordHash = "", ""
	if err := a.Queries.StageSignupSecrets(ctx, db.StageSignupSecretsParams{
		SignupID: uuid.MustParse(second.SignupID), UserID: second.UserID, Email: email, PasswordHash: "$2a$04$x",
	}); err != nil {
		t.Fatal(err)
	}
	wantVerdict(t, a.CreateCredentials(ctx, second), chatflow.ECodeEmailTaken)
	if n := stagedRows(t, a, second.UserID); n != 0 {
		t.Fatalf("%d staged rows after the email_taken verdict", n)
	}

	never := newInput()
	never.Email, never.PasswordHash = "", ""
	err := a.CreateCredentials(ctx, never)
	wantVerdict(t, err, chatflow.ECodeConflict)
	if !strings.Contains(err.Error(), "expired") {
		t.Fatalf("no staged secrets: %v", err)
	}
	if u, _, _ := counts(t, a, never.UserID); u != 0 {
		t.Fatal("credentials created without secrets")
	}
}

// TestPurgeSignupSecrets: rows older than the cutoff go, newer ones stay.
func TestPurgeSignupSecrets(t *testing.T) {
	a, _ := testActivities(t)
	ctx := context.Background()
	old, _, _ := stagedInput(t, a)
	fresh, _, _ := stagedInput(t, a)
	if _, err := a.Pool.Exec(ctx, `UPDATE auth.signup_secrets SET created_at = now() - interval '2 days' WHERE user_id = $1`, old.UserID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Queries.PurgeSignupSecrets(ctx, time.Now().Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if stagedRows(t, a, old.UserID) != 0 || stagedRows(t, a, fresh.UserID) != 1 {
		t.Fatalf("purge: old %d fresh %d", stagedRows(t, a, old.UserID), stagedRows(t, a, fresh.UserID))
	}
}
