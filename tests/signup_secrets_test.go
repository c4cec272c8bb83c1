package tests

import (
	"bytes"
	"context"
	"testing"

	"go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/proto"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
)

// TestSignupHistoryHoldsNoSecrets: after a completed sign-up, no event of
// the saga's Temporal history (inputs, results, summaries, details, memo)
// holds the email, the bcrypt hash or the password, in any payload: the
// api staged them in Postgres and the first step read them there. The saga
// stays readable (its steps are there by name), the user can log in with
// the credentials the saga stored, and the staged row is gone.
func TestSignupHistoryHoldsNoSecrets(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	u := n.SignUp(t, "sghist") // logs in: the stored hash matches the password
	ctx := context.Background()

	var email, hash string
	if err := env.Pool.QueryRow(ctx, `SELECT email, password_hash FROM auth.users WHERE id = $1`, u.ID).Scan(&email, &hash); err != nil {
		t.Fatal(err)
	}
	if email != u.Email || len(hash) < 50 {
		t.Fatalf("stored credentials: email %q, hash %q", email, hash)
	}
	var staged int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM auth.signup_secrets WHERE user_id = $1`, u.ID).Scan(&staged); err != nil {
		t.Fatal(err)
	}
	if staged != 0 {
		t.Fatalf("%d staged secret rows left after the sign-up completed", staged)
	}

	secrets := map[string][]byte{"email": []byte(email), "password hash": []byte(hash), "password": []byte(u.Password),
		// the hash without its "$2a$04$" prefix, in case it were re-encoded around it
		"hash digest": []byte(hash[7:])}
	iter := env.Temporal.GetWorkflowHistory(ctx, chatflow.SignupWorkflowID(u.Username), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events int
	steps := map[string]bool{}
	sawUsername := false
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		events++
		raw, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		for what, s := range secrets {
			if bytes.Contains(raw, s) {
				t.Errorf("history event %d (%s) holds the %s", ev.GetEventId(), ev.GetEventType(), what)
			}
		}
		sawUsername = sawUsername || bytes.Contains(raw, []byte(u.Username))
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			steps[a.GetActivityType().GetName()] = true
		}
	}
	// The scan saw the saga's payloads (the username is in its input), and
	// the saga is readable: every forward step is in the history by name.
	if events < 10 || !sawUsername {
		t.Fatalf("history of %d events, username seen %v: the scan proves nothing", events, sawUsername)
	}
	for _, step := range []string{"CreateCredentials", "CreateProfile", "OpenAccount", "PublishUserCreated", "ActivateUser"} {
		if !steps[step] {
			t.Errorf("step %s not in the history (steps: %v)", step, steps)
		}
	}
}
