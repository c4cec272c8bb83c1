package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/chatflow/chatflow"
)

// pendingMsg is an accepted message waiting for its batch workflow to start.
type pendingMsg struct {
	msg  chatflow.Message
	size int // upper bound of msg's size in the workflow input, see msgJSONSize
}

// maxBatchBytes caps the JSON size of one batch workflow's input. Temporal
// rejects a start whose input is over 2 MB (the default blob size limit),
// and that is not transient: flush would retry it forever, holding a start
// slot, never acking the batch's senders and never persisting its messages.
// BatchMax alone does not bound the size: 2000 messages of 4000 characters
// are 8 MB of ASCII, and 4-byte characters or JSON escapes make a single
// message up to ~24 KB. A batch stops growing once it reaches this many
// bytes, so it ends at most one message (~25 KB) above it.
const maxBatchBytes = 1 << 20

// msgJSONSize is an upper bound of the bytes m adds to a batch workflow's
// JSON input: fixed fields plus the two client strings as encoding/json
// (which the Temporal data converter uses) escapes them.
func msgJSONSize(m chatflow.Message) int {
	// field names, three UUIDs, seq, sent_at, punctuation: about 260 bytes;
	// kind and reply_to up to about 50 more
	const fixed = 340
	return fixed + jsonStringSize(m.ClientMsgID) + jsonStringSize(m.Body)
}

// jsonStringSize bounds the length of s, valid UTF-8 (bodies are checked by
// ValidBody, ids by ValidClientMsgID), once JSON-encoded by encoding/json.
func jsonStringSize(s string) int {
	n := 2 // quotes
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			n += 2
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 6 // \u00XX (HTML-safe escaping is on by default)
		case c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9):
			n += 6 // U+2028, U+2029 become \u2028, \u2029
			i += 2
		default:
			n++
		}
	}
	return n
}

// batcher is the group commit of accepted messages into Temporal: it gathers
// messages for a few milliseconds (and for as long as all start slots are
// busy) and starts ONE PersistBatch workflow per batch. It is the fast path
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
func (b *batcher) add(m chatflow.Message) {
	select {
	case b.in <- pendingMsg{msg: m, size: msgJSONSize(m)}:
	default:
		b.metrics.batchesLeft.Inc()
	}
}

func (b *batcher) run(ctx context.Context) {
	linger := b.cfg.BatchLinger
	for {
		var batch []pendingMsg
		size := 0
		add := func(p pendingMsg) { batch = append(batch, p); size += p.size }
		full := func() bool { return len(batch) >= b.cfg.BatchMax || size >= maxBatchBytes }
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
		size := 0
	collect:
		for len(batch) < b.cfg.BatchMax && size < maxBatchBytes {
			select {
			case p := <-b.in:
				batch = append(batch, p)
				size += p.size
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

// BatchID names a batch by its node and messages, so that starting the
// same batch twice (a retried start whose answer was lost) runs it once.
func BatchID(node string, msgs []chatflow.Message) string {
	h := sha256.New()
	for _, m := range msgs {
		fmt.Fprintf(h, "%s:%d,", m.RoomID, m.Seq)
	}
	return "msgbatch-" + node + "-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// startTimeout bounds one attempt to start a batch workflow.
const startTimeout = 10 * time.Second

// flush starts the batch workflow, retrying with the same workflow id while
// StartRetry lasts; then the batch is left to the reconciler.
func (b *batcher) flush(ctx context.Context, batch []pendingMsg) {
	msgs := make([]chatflow.Message, len(batch))
	for i, p := range batch {
		msgs[i] = p.msg
	}
	if time.Now().UnixNano() < b.downUntil.Load() {
		b.metrics.batchesLeft.Inc()
		return
	}
	id := BatchID(b.cfg.NodeID, msgs)
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
		_, err = b.starter.ExecuteWorkflow(sctx, opts, chatflow.WorkflowPersistBatch, chatflow.MessageBatch{Node: b.cfg.NodeID, Messages: msgs})
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
		b.log.Warn("batch workflow not started; the reconciler persists it from the log", "batch", id, "messages", len(msgs), "error", err)
		return
	}
	b.metrics.batchSize.Observe(float64(len(msgs)))
	b.metrics.messagesCommitted.Add(float64(len(msgs)))
}
