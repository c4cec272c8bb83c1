package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
)

// PersistResult reports what a batch did.
type PersistResult struct {
	Inserted int64 `json:"inserted"`
	// PublishDeferred is set when Kafka was not reached; the reconciler
	// publishes the batch's rooms later from the outbox.
	PublishDeferred bool `json:"publish_deferred,omitempty"`
}

// persistForever stands for "no cut-off": a local activity's schedule-to-close
// defaults to its start-to-close, which would end the retries of a batch
// after one attempt's timeout. Retries go on for as long as Postgres is
// away, with a bounded backoff.
const persistForever = 100 * 365 * 24 * time.Hour

// PersistRetry is the retry policy of storing a batch: forever, backing off
// to at most 10 s between attempts.
var PersistRetry = &temporal.RetryPolicy{
	InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
}

// PersistBatch stores one group commit of accepted messages in Postgres,
// then publishes the rooms' new messages to Kafka. The messages are already
// acknowledged and held in the rooms' logs, so the store step retries until
// it succeeds; Kafka is best effort here (one try, skipped while Kafka is
// known down) because the reconciler publishes whatever is left, and a
// Kafka outage must never hold up Postgres writes.
//
// The steps are local activities: they run on the worker that picked up the
// workflow task, so a batch costs one workflow task and two small markers in
// history. A worker that dies mid-batch leaves the workflow task to time
// out; another worker replays it and re-runs the (idempotent) steps.
func PersistBatch(ctx workflow.Context, b chatflow.MessageBatch) (PersistResult, error) {
	var a *activities.Activities
	store := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: persistForever,
		RetryPolicy:            PersistRetry,
	})
	var res PersistResult
	if err := workflow.ExecuteLocalActivity(store, a.PersistMessages, b).Get(ctx, &res.Inserted); err != nil {
		return res, err
	}
	publish := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	if err := workflow.ExecuteLocalActivity(publish, a.PublishRooms, roomsOf(b)).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("Kafka publish left to the reconciler", "error", err)
		res.PublishDeferred = true
	}
	return res, nil
}

func roomsOf(b chatflow.MessageBatch) []string {
	var rooms []string
	for _, m := range b.Messages {
		rooms = append(rooms, m.RoomID)
	}
	slices.Sort(rooms)
	return slices.Compact(rooms)
}

// Reconcile is one pass of the reconciler, started by a Temporal Schedule
// (see workers.EnsureSchedules): Postgres and Kafka catch up with
// every room's log, whatever the batches missed.
func Reconcile(ctx workflow.Context) (activities.ReconcileResult, error) {
	var a *activities.Activities
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
		Summary:             "persist and publish what the logs hold beyond Postgres and Kafka",
	})
	var res activities.ReconcileResult
	err := workflow.ExecuteActivity(ctx, a.Reconcile).Get(ctx, &res)
	return res, err
}
