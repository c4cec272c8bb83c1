// Package workers runs the Temporal worker pools: one for sign-up sagas and
// one for message batches. More `chatflow worker` processes add capacity.
package workers

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/workflows"
)

// Options size the pools.
type Options struct {
	SignupConcurrency   int
	MessagesConcurrency int
	// SignupTaskQueue and MessagesTaskQueue default to the workflows package's names.
	SignupTaskQueue   string
	MessagesTaskQueue string
}

// New builds both workers with every workflow and activity registered.
func New(c client.Client, acts *activities.Activities, o Options) []worker.Worker {
	if o.SignupConcurrency <= 0 {
		o.SignupConcurrency = 32
	}
	if o.MessagesConcurrency <= 0 {
		o.MessagesConcurrency = 64
	}
	if o.SignupTaskQueue == "" {
		o.SignupTaskQueue = workflows.SignupTaskQueue
	}
	if o.MessagesTaskQueue == "" {
		o.MessagesTaskQueue = workflows.MessagesTaskQueue
	}
	sw := worker.New(c, o.SignupTaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:     o.SignupConcurrency,
		MaxConcurrentWorkflowTaskExecutionSize: o.SignupConcurrency,
	})
	sw.RegisterWorkflow(workflows.Signup)
	sw.RegisterActivity(acts)

	mw := worker.New(c, o.MessagesTaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:     o.MessagesConcurrency,
		MaxConcurrentWorkflowTaskExecutionSize: o.MessagesConcurrency,
		MaxConcurrentActivityTaskPollers:       4,
		MaxConcurrentWorkflowTaskPollers:       4,
	})
	mw.RegisterWorkflow(workflows.PersistBatch)
	mw.RegisterActivity(acts)
	return []worker.Worker{sw, mw}
}

// Run starts the workers and blocks until ctx ends, then stops them,
// letting in-flight activities finish.
func Run(ctx context.Context, ws []worker.Worker) error {
	for i, w := range ws {
		if err := w.Start(); err != nil {
			for _, s := range ws[:i] {
				s.Stop()
			}
			return fmt.Errorf("start worker: %w", err)
		}
	}
	<-ctx.Done()
	for _, w := range ws {
		w.Stop()
	}
	return nil
}
