package tests

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/events"
	"github.com/chatflow/chatflow/internal/testenv"
)

// A deletion saga interrupted by a worker kill (issue 11).

// deadWorkerPublisher passes every record to Kafka except user.deleted of
// one user, on which it hangs for good, ignoring its context, as a worker
// process that died in the middle of the publish would.
type deadWorkerPublisher struct {
	real    *events.Publisher
	userID  string
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func (p *deadWorkerPublisher) Publish(ctx context.Context, recs ...events.Record) error {
	for _, r := range recs {
		if string(r.Key) == p.userID && strings.Contains(string(r.Value), `"`+chatflow.EventUserDeleted+`"`) {
			p.once.Do(func() { close(p.entered) })
			<-p.release
			return context.Canceled
		}
	}
	return p.real.Publish(ctx, recs...)
}

// A deletion saga whose worker dies in the middle (here in step 6, past the
// point of no return) completes on another worker.
func TestDeletionSurvivesWorkerKill(t *testing.T) {
	env := testenv.Open(t)
	real := events.NewPublisher(env.KafkaBrokers)
	t.Cleanup(func() { real.Close() })
	hang := &deadWorkerPublisher{real: real, entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(hang.release) })
	kill := env.Worker(t, hang)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "delk"), n.SignUp(t, "delkb")
	hang.userID = a.ID
	room := n.CreateRoom(t, b, a)

	d := startDeletion(t, n, a)
	select {
	case <-hang.entered:
	case <-time.After(60 * time.Second):
		t.Fatalf("the saga never reached step 6: %+v", deletionOf(t, n, d.StatusURL, ""))
	}
	if s := deletionOf(t, n, d.StatusURL, ""); s.Status != chatflow.StatusRunning || s.Step != chatflow.DelStepEvent {
		t.Fatalf("mid-saga status %+v", s)
	}
	// The profile is anonymized, the credentials not yet deleted: the
	// username is not free before the saga completes.
	wantProblem(t, "sign-up mid-deletion", acctCall(t, n, "POST", "/api/v1/signup", "", signupBody(a.Username, "other-"+a.Email), nil), 409, chatflow.ECodeUsernameTaken)

	kill() // the pools stop without waiting for the hung activity
	time.Sleep(time.Second)
	env.Worker(t, nil)

	got := waitDeletion(t, n, d.StatusURL, 120*time.Second)
	if got.Status != chatflow.StatusCompleted {
		t.Fatalf("deletion after the worker kill: %+v", got)
	}
	findUserEvent(t, env.KafkaBrokers, chatflow.EventUserDeleted, a.ID, 30*time.Second)
	if _, ok := memberLeft(roomMessages(t, n, b, room), a.ID); !ok {
		t.Fatal("no member_left message")
	}
	if u, _, _ := rowCounts(t, env, a.ID); u != 0 {
		t.Fatal("credentials still there")
	}
	desc, err := env.Temporal.DescribeWorkflowExecution(context.Background(), chatflow.DeletionWorkflowID(uuid.MustParse(a.ID), uuid.MustParse(d.DeletionID)), "")
	if err != nil {
		t.Fatal(err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus().String(); st != "Completed" {
		t.Fatalf("workflow status %s", st)
	}
	// The history shows the kill: step 6 completed on a later attempt.
	if att := activityAttempt(t, env, desc.GetWorkflowExecutionInfo().GetExecution().GetWorkflowId(), "PublishUserDeleted"); att < 2 {
		t.Fatalf("PublishUserDeleted completed on attempt %d: the kill did not interrupt it", att)
	}
}

// activityAttempt returns the attempt on which the activity of type typ
// started for the last time in a workflow's history.
func activityAttempt(t *testing.T, env *testenv.Env, wid, typ string) int32 {
	t.Helper()
	it := env.Temporal.GetWorkflowHistory(context.Background(), wid, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	scheduled := map[int64]string{}
	var attempt int32
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == typ {
			attempt = a.GetAttempt()
		}
	}
	return attempt
}
