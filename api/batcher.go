package api

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/workflows"
)

// pendingMsg is an accepted message waiting for its batch workflow to start.
type pendingMsg struct {
	msg  chatflow.Message
	done func(error)
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
	// field names, three UUIDs, seq, sent_at, punctuation: about 260 bytes
	const fixed = 300
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

// Batcher is the group commit of accepted messages into Temporal: it gathers
// messages for a few milliseconds (and for as long as all start slots are
// busy) and starts ONE PersistBatch workflow per batch.
type Batcher struct {
	stopped chan struct{} // closed once run has drained and returned
	s       *Server
	in      chan pendingMsg
	sem     chan struct{}
}

func newBatcher(s *Server) *Batcher {
	return &Batcher{s: s, in: make(chan pendingMsg, 4*s.Cfg.BatchMax), sem: make(chan struct{}, s.Cfg.BatchInflight), stopped: make(chan struct{})}
}

// add queues a message; done runs once its batch workflow has started (nil)
// or the node gives up on it.
//
// A message handed to add has already been sequenced and fanned out, so add
// never gives up on it for a deadline: it waits for room in the queue (the
// sending connection waits with it, which is the backpressure). Callers ask
// overloaded() before sequencing, so new sends are refused instead.
func (b *Batcher) add(m chatflow.Message, done func(error)) error {
	select {
	case b.in <- pendingMsg{msg: m, done: done, size: msgJSONSize(m)}:
		return nil
	case <-b.stopped:
		return chatflow.Errorf(chatflow.ECodeUnavailable, "node is shutting down; retry with the same client_msg_id")
	}
}

// overloaded reports whether the queue is too full to take new sends.
func (b *Batcher) overloaded() bool { return len(b.in) >= cap(b.in)*3/4 }

func (b *Batcher) run(ctx context.Context) {
	linger := b.s.Cfg.BatchLinger
	for {
		var batch []pendingMsg
		size := 0
		add := func(p pendingMsg) { batch = append(batch, p); size += p.size }
		full := func() bool { return len(batch) >= b.s.Cfg.BatchMax || size >= maxBatchBytes }
		select {
		case p := <-b.in:
			add(p)
		case <-ctx.Done():
			b.drain()
			close(b.stopped)
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
func (b *Batcher) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		var batch []pendingMsg
		size := 0
	collect:
		for len(batch) < b.s.Cfg.BatchMax && size < maxBatchBytes {
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

// flush starts the batch workflow, retrying with the same workflow id so a
// start that succeeded but whose answer was lost is not started twice.
func (b *Batcher) flush(ctx context.Context, batch []pendingMsg) {
	msgs := make([]chatflow.Message, len(batch))
	for i, p := range batch {
		msgs[i] = p.msg
	}
	id := "msgbatch-" + b.s.Cfg.NodeID + "-" + uuid.Must(uuid.NewV7()).String()
	opts := client.StartWorkflowOptions{
		ID: id, TaskQueue: b.s.Cfg.MessagesTaskQueue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}
	start := time.Now()
	backoff := 50 * time.Millisecond
	var err error
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = b.s.Temporal.ExecuteWorkflow(sctx, opts, workflows.PersistBatch, activities.MessageBatch{Node: b.s.Cfg.NodeID, Messages: msgs})
		cancel()
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if err == nil || errors.As(err, &already) {
			err = nil
			break
		}
		if ctx.Err() != nil {
			break
		}
		b.s.Log.Warn("batch workflow start failed; retrying", "batch", id, "messages", len(msgs), "error", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	b.s.metrics.batchStart.Observe(time.Since(start).Seconds())
	if err != nil {
		b.s.Log.Error("batch not started; messages stay in the Redis history until resent", "batch", id, "messages", len(msgs), "error", err)
		err = chatflow.Errorf(chatflow.ECodeUnavailable, "persistence unavailable; retry with the same client_msg_id")
	} else {
		b.s.metrics.batchSize.Observe(float64(len(msgs)))
		b.s.metrics.messagesCommitted.Add(float64(len(msgs)))
	}
	for _, p := range batch {
		p.done(err)
	}
}
