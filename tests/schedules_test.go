package tests

import (
	"context"
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/workers"
)

// Every worker start ensures its schedules: it creates the missing ones and
// changes an existing one only when its interval changed, so starting
// workers does not write to Temporal each time.
func TestEnsureSchedulesWritesOnlyChanges(t *testing.T) {
	env := testenv.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := workers.DefaultConfig()
	q := "test-schedules-" + testenv.Unique()
	cfg.SignupTaskQueue, cfg.MessagesTaskQueue = q, q
	t.Cleanup(func() {
		for _, id := range workers.ScheduleIDs(cfg) {
			_ = env.Temporal.ScheduleClient().GetHandle(context.Background(), id).Delete(context.Background())
		}
	})
	h := env.Temporal.ScheduleClient().GetHandle(ctx, workers.ResumeScheduleID(q))
	describe := func() (time.Duration, time.Time) {
		t.Helper()
		d, err := h.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Schedule.Spec.Intervals) != 1 {
			t.Fatalf("spec %+v", d.Schedule.Spec)
		}
		return d.Schedule.Spec.Intervals[0].Every, d.Info.LastUpdateAt
	}

	if err := workers.EnsureSchedules(ctx, env.Temporal, cfg); err != nil {
		t.Fatal(err)
	}
	every, updated := describe()
	if every != cfg.ResumeEvery {
		t.Fatalf("created with %s, want %s", every, cfg.ResumeEvery)
	}
	time.Sleep(1100 * time.Millisecond) // an update would carry a later time
	if err := workers.EnsureSchedules(ctx, env.Temporal, cfg); err != nil {
		t.Fatal(err)
	}
	if e, u := describe(); e != every || !u.Equal(updated) {
		t.Fatalf("the same configuration again: every %s, updated %s (was %s)", e, u, updated)
	}
	cfg.ResumeEvery = 2 * time.Minute
	if err := workers.EnsureSchedules(ctx, env.Temporal, cfg); err != nil {
		t.Fatal(err)
	}
	if e, u := describe(); e != 2*time.Minute || !u.After(updated) {
		t.Fatalf("a new interval: every %s, updated %s (was %s)", e, u, updated)
	}
}
