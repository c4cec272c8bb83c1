package chat

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/chatflow/chatflow"
)

// pendingMsg is an accepted message waiting for its batch workflow to start:
// its room and seq are all the batch carries (see chatflow.MessageBatch).
type pendingMsg struct {
	room string
	seq  int64
}

// batcher is the group commit of accepted messages into Temporal: it gathers
// messages for BatchLinger (and for as long as all start slots are busy)
// and starts ONE PersistBatch workflow per batch. It is the fast path
// to Postgres, not the durability point: every message it is handed is
// already in the room's log, so a batch it cannot start (Temporal down, the
// node stopping) is left to the reconciler instead of holding up senders.
type batcher struct {
	cfg     Config
	starter WorkflowStarter
	log     *slog.Logger
	metrics *Metrics
	in      chan pendingMsg
	sem     chan struct{}
	// downUntil holds batches back while Temporal refused the last start,
	// so an outage costs senders nothing (unix nanoseconds).
	downUntil atomic.Int64
}

func newBatcher(cfg Config, starter WorkflowStarter, log *slog.Logger, m *Metrics) *batcher {
	return &batcher{
		cfg: cfg, starter: starter, log: log, metrics: m,
		in: make(chan pendingMsg, 4*cfg.BatchMax), sem: make(chan struct{}, cfg.BatchInflight),
	}
}

// add queues a message without blocking; when the queue is full the
// message is left to the reconciler.
func (b *batcher) add(room string, seq int64) {
	select {
	case b.in <- pendingMsg{room: room, seq: seq}:
	default:
		b.metrics.batchesLeft.Inc()
	}
}

func (b *batcher) run(ctx context.Context) {
	linger := b.cfg.BatchLinger
	for {
		var batch []pendingMsg
		add := func(p pendingMsg) { batch = append(batch, p) }
		full := func() bool { return len(batch) >= b.cfg.BatchMax }
		select {
		case p := <-b.in:
			add(p)
		case <-ctx.Done():
			b.drain()
			return
		}
		timer := time.NewTimer(linger)
	gather:
		for !full() {
			select {
			case p := <-b.in:
				add(p)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		// Wait for a start slot, still gathering: under load batches grow
		// instead of queueing more workflow starts.
	slot:
		for {
			if full() {
				b.sem <- struct{}{}
				break
			}
			select {
			case b.sem <- struct{}{}:
				break slot
			case p := <-b.in:
				add(p)
			}
		}
		go func(batch []pendingMsg) {
			defer func() { <-b.sem }()
			b.flush(context.WithoutCancel(ctx), batch)
		}(batch)
	}
}

// drain flushes whatever is queued when the node stops.
func (b *batcher) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		var batch []pendingMsg
	collect:
		for len(batch) < b.cfg.BatchMax {
			select {
			case p := <-b.in:
				batch = append(batch, p)
			default:
				break collect
			}
		}
		if len(batch) == 0 {
			// wait for in-flight starts
			for i := 0; i < cap(b.sem); i++ {
				b.sem <- struct{}{}
			}
			return
		}
		b.flush(ctx, batch)
	}
}

// seqRanges folds accepted messages into runs of consecutive seqs per room,
// sorted by room and seq. Seqs another node took in between split a run, so
// the ranges name exactly the messages given.
func seqRanges(msgs []pendingMsg) []chatflow.SeqRange {
	sorted := slices.Clone(msgs)
	slices.SortFunc(sorted, func(x, y pendingMsg) int {
		if c := strings.Compare(x.room, y.room); c != 0 {
			return c
		}
		return cmp.Compare(x.seq, y.seq)
	})
	var out []chatflow.SeqRange
	for _, p := range sorted {
		if n := len(out); n > 0 && out[n-1].Room == p.room && p.seq <= out[n-1].To+1 {
			out[n-1].To = max(out[n-1].To, p.seq)
			continue
		}
		out = append(out, chatflow.SeqRange{Room: p.room, From: p.seq, To: p.seq})
	}
	return out
}

// BatchID names a batch by its node and ranges, so that starting the same
// batch twice (a retried start whose answer was lost) runs it once.
func BatchID(node string, ranges []chatflow.SeqRange) string {
	h := sha256.New()
	for _, r := range ranges {
		fmt.Fprintf(h, "%s:%d-%d,", r.Room, r.From, r.To)
	}
	return "msgbatch-" + node + "-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// startTimeout bounds one attempt to start a batch workflow.
const startTimeout = 10 * time.Second

// flush starts the batch workflow, retrying with the same workflow id while
// StartRetry lasts; then the batch is left to the reconciler.
func (b *batcher) flush(ctx context.Context, batch []pendingMsg) {
	if time.Now().UnixNano() < b.downUntil.Load() {
		b.metrics.batchesLeft.Inc()
		return
	}
	ranges := seqRanges(batch)
	id := BatchID(b.cfg.NodeID, ranges)
	opts := client.StartWorkflowOptions{
		ID: id, TaskQueue: b.cfg.MessagesTaskQueue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}
	start := time.Now()
	deadline := start.Add(b.cfg.StartRetry)
	backoff := 50 * time.Millisecond
	var err error
	for {
		// Each attempt gets a full startTimeout, never the rest of StartRetry:
		// a start cancelled mid-way makes the Temporal dev server interrupt
		// its SQLite transaction, which leaves its store unusable until it
		// restarts (seen here under load with 100 ms deadlines).
		sctx, cancel := context.WithTimeout(ctx, startTimeout)
		_, err = b.starter.ExecuteWorkflow(sctx, opts, chatflow.WorkflowPersistBatch, chatflow.MessageBatch{Node: b.cfg.NodeID, Ranges: ranges})
		cancel()
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if err == nil || errors.As(err, &already) {
			err = nil
			break
		}
		if ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			break
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, time.Second)
	}
	b.metrics.batchStart.Observe(time.Since(start).Seconds())
	if err != nil {
		b.downUntil.Store(time.Now().Add(b.cfg.StartRetry).UnixNano())
		b.metrics.batchesLeft.Inc()
		b.log.Warn("batch workflow not started; the reconciler persists it from the log", "batch", id, "messages", len(batch), "error", err)
		return
	}
	b.metrics.batchSize.Observe(float64(len(batch)))
	b.metrics.messagesCommitted.Add(float64(len(batch)))
}
