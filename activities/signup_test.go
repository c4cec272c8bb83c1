package activities

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/events"
	"github.com/chatflow/chatflow/postgres"
)

// These tests run the sign-up activities against the local Postgres that
// `make test` starts (DATABASE_URL, default the port of scripts/services.sh).

var (
	poolOnce sync.Once
	pool     *pgxpool.Pool
	poolErr  error
)

func testActivities(t *testing.T) (*Activities, *recordingPublisher) {
	t.Helper()
	poolOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		url := os.Getenv("DATABASE_URL")
		if url == "" {
			url = "postgres://postgres@127.0.0.1:15432/chatflow?sslmode=disable"
		}
		if pool, poolErr = postgres.Open(ctx, url, 8); poolErr == nil {
			poolErr = postgres.Migrate(ctx, pool)
		}
	})
	if poolErr != nil {
		t.Fatalf("Postgres is not reachable (%v); run `make test`, or `scripts/services.sh start` first", poolErr)
	}
	pub := &recordingPublisher{}
	return &Activities{Pool: pool, Queries: db.New(pool), Events: pub}, pub
}

type recordingPublisher struct {
	mu   sync.Mutex
	recs []events.Record
}

func (p *recordingPublisher) Publish(_ context.Context, recs ...events.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recs = append(p.recs, recs...)
	return nil
}

func (p *recordingPublisher) types() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.recs {
		switch {
		case strings.Contains(string(r.Value), `"user.created"`):
			out = append(out, "user.created")
		case strings.Contains(string(r.Value), `"user.rolled_back"`):
			out = append(out, "user.rolled_back")
		}
	}
	return out
}

func newInput() chatflow.SignupInput {
	u := "act_" + strings.ReplaceAll(uuid.NewString()[:12], "-", "")
	return chatflow.SignupInput{
		SignupID: uuid.NewString(), UserID: uuid.New(), Username: u, Email: u + "@example.test",
		PasswordHash: "$2a$04$abcdefghijklmnopqrstuv", DisplayName: "Act", RequestedAt: time.Now().UTC(),
	}
}

func counts(t *testing.T, a *Activities, id uuid.UUID) (users, profiles, accounts int) {
	t.Helper()
	if err := a.Pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM auth.users WHERE id = $1),
		(SELECT count(*) FROM chat.profiles WHERE user_id = $1),
		(SELECT count(*) FROM customer.accounts WHERE user_id = $1)`, id).Scan(&users, &profiles, &accounts); err != nil {
		t.Fatal(err)
	}
	return
}

// forward runs steps 1-3 (credentials, profile, account).
func forward(t *testing.T, a *Activities, in chatflow.SignupInput) {
	t.Helper()
	ctx := context.Background()
	if err := a.CreateCredentials(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateProfile(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := a.OpenAccount(ctx, in.UserID); err != nil {
		t.Fatal(err)
	}
}

// compensate runs every compensation in the saga's order, twice (a retry
// after a lost answer must be harmless).
func compensate(t *testing.T, a *Activities, in chatflow.SignupInput) {
	t.Helper()
	ctx := context.Background()
	for range 2 {
		if err := a.PublishUserRolledBack(ctx, in); err != nil {
			t.Fatal(err)
		}
		if err := a.CloseAccount(ctx, in.UserID); err != nil {
			t.Fatal(err)
		}
		if err := a.DeleteProfile(ctx, in.UserID); err != nil {
			t.Fatal(err)
		}
		if err := a.DeleteCredentials(ctx, in.UserID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCompensationsRemoveAPendingUser(t *testing.T) {
	a, pub := testActivities(t)
	in := newInput()
	forward(t, a, in)
	if u, p, ac := counts(t, a, in.UserID); u+p+ac != 3 {
		t.Fatalf("after steps 1-3: users %d profiles %d accounts %d", u, p, ac)
	}
	compensate(t, a, in)
	if u, p, ac := counts(t, a, in.UserID); u+p+ac != 0 {
		t.Errorf("after compensation: users %d profiles %d accounts %d", u, p, ac)
	}
	if got := pub.types(); len(got) != 2 || got[0] != "user.rolled_back" {
		t.Errorf("published %v, want user.rolled_back (twice: consumers dedupe by event id)", got)
	}
	active, err := a.UserActive(context.Background(), in.UserID)
	if err != nil || active {
		t.Errorf("UserActive of a removed user = %v, %v", active, err)
	}
}

// A compensation that runs after activation committed (a late retry, an
// activation whose answer was lost) never removes or retracts an active user.
func TestCompensationsKeepAnActiveUser(t *testing.T) {
	a, pub := testActivities(t)
	in := newInput()
	forward(t, a, in)
	if err := a.ActivateUser(context.Background(), in.UserID); err != nil {
		t.Fatal(err)
	}
	active, err := a.UserActive(context.Background(), in.UserID)
	if err != nil || !active {
		t.Fatalf("UserActive after activation = %v, %v", active, err)
	}
	compensate(t, a, in)
	if u, p, ac := counts(t, a, in.UserID); u+p+ac != 3 {
		t.Errorf("compensations touched an active user: users %d profiles %d accounts %d", u, p, ac)
	}
	if got := pub.types(); len(got) != 0 {
		t.Errorf("published %v for an active user", got)
	}
}

// Outside the saga of its own username (no activity context here), a pending
// holder of the username cannot be judged stale: the name stays taken.
func TestCreateCredentialsOutsideTheSagaKeepsPendingHolder(t *testing.T) {
	a, _ := testActivities(t)
	first := newInput()
	forward(t, a, first)
	second := newInput()
	second.Username = first.Username
	err := a.CreateCredentials(context.Background(), second)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != chatflow.ECodeUsernameTaken || !app.NonRetryable() {
		t.Fatalf("CreateCredentials of a held username = %v, want non-retryable %s", err, chatflow.ECodeUsernameTaken)
	}
	if u, p, ac := counts(t, a, first.UserID); u+p+ac != 3 {
		t.Errorf("the holder's rows changed: users %d profiles %d accounts %d", u, p, ac)
	}
	compensate(t, a, first)
}

// A chat profile whose credentials are gone (left by a sign-up that ended
// between its steps) does not keep the username from the next sign-up.
func TestCreateProfileReplacesAnOrphanProfile(t *testing.T) {
	a, _ := testActivities(t)
	ctx := context.Background()
	in := newInput()
	orphan := uuid.New()
	if err := a.Queries.CreateProfile(ctx, db.CreateProfileParams{UserID: orphan, Username: in.Username, DisplayName: "orphan"}); err != nil {
		t.Fatal(err)
	}
	forward(t, a, in)
	if _, p, _ := counts(t, a, orphan); p != 0 {
		t.Errorf("orphan profile still there")
	}
	if _, p, _ := counts(t, a, in.UserID); p != 1 {
		t.Errorf("profile of the new sign-up missing")
	}
	compensate(t, a, in)
}

// DeleteStaleSignup removes a pending user with its profile and account, and
// never an active one.
func TestDeleteStaleSignup(t *testing.T) {
	a, _ := testActivities(t)
	ctx := context.Background()
	pending, active := newInput(), newInput()
	forward(t, a, pending)
	forward(t, a, active)
	if err := a.ActivateUser(ctx, active.UserID); err != nil {
		t.Fatal(err)
	}
	for _, in := range []chatflow.SignupInput{pending, active} {
		if _, err := a.Queries.DeleteStaleSignup(ctx, in.UserID); err != nil {
			t.Fatal(err)
		}
	}
	if u, p, ac := counts(t, a, pending.UserID); u+p+ac != 0 {
		t.Errorf("stale pending sign-up left users %d profiles %d accounts %d", u, p, ac)
	}
	if u, p, ac := counts(t, a, active.UserID); u+p+ac != 3 {
		t.Errorf("active user touched: users %d profiles %d accounts %d", u, p, ac)
	}
}
