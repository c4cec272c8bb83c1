package chat

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow/roomlog"
)

// scriptCall is one run of the send script waiting for a pipeline.
type scriptCall struct {
	a    roomlog.Append
	done chan scriptResult
}

type scriptResult struct {
	vals []any
	err  error
}

// pipeliner sends the accept script of many connections to Redis together:
// the sends that arrive while a pipeline is on the wire go out in the next
// one, so under load each round trip (and each syscall on both sides)
// carries many messages. Redis runs them in order; a caller waits for its
// own result, so each sender's messages keep their order.
type pipeliner struct {
	rdb redis.UniversalClient
	in  chan *scriptCall
	// split counts batches that went out on more than one connection.
	split atomic.Int64
	// observe, if set, is told each batch's size.
	observe func(scripts int)
}

// maxPipeline caps the scripts a pipeliner worker takes per round trip.
const maxPipeline = 256

// pipelineChunk is the most scripts one connection carries per round trip;
// a longer batch goes out on several connections at once. Redis reads 16 KB
// from each client per event-loop turn and, with appendfsync always, ends
// every turn with an fsync: a batch of 256 scripts (~850 bytes each) on one
// connection took some fifteen turns and as many fsyncs, the same batch on
// sixteen connections lands in one turn. Under load the fsync, not Redis'
// CPU, was what bounded the sends per second (BENCHMARKS.md, round 5).
// A batch of one chunk or less, the common case under light load, goes out
// as before on one connection.
const pipelineChunk = 16

func newPipeliner(rdb redis.UniversalClient) *pipeliner {
	return &pipeliner{rdb: rdb, in: make(chan *scriptCall, 4*maxPipeline)}
}

// run sends pipelines with a few workers until ctx ends.
func (p *pipeliner) run(ctx context.Context, workers int) {
	for range workers {
		go func() {
			batch := make([]*scriptCall, 0, maxPipeline)
			for {
				select {
				case c := <-p.in:
					batch = append(batch[:0], c)
				case <-ctx.Done():
					return
				}
			more:
				for len(batch) < maxPipeline {
					select {
					case c := <-p.in:
						batch = append(batch, c)
					default:
						break more
					}
				}
				p.exec(batch)
			}
		}()
	}
}

// exec runs a batch, split into chunks on connections of their own. Every
// caller waits for its own reply and a connection sends one message at a
// time, so no sender's order depends on which chunk its script is in.
func (p *pipeliner) exec(batch []*scriptCall) {
	if p.observe != nil {
		p.observe(len(batch))
	}
	if len(batch) <= pipelineChunk {
		p.execChunk(batch)
		return
	}
	p.split.Add(1)
	k := (len(batch) + pipelineChunk - 1) / pipelineChunk
	size := (len(batch) + k - 1) / k
	var wg sync.WaitGroup
	for len(batch) > 0 {
		part := batch[:min(size, len(batch))]
		batch = batch[len(part):]
		wg.Go(func() { p.execChunk(part) })
	}
	wg.Wait()
}

func (p *pipeliner) execChunk(batch []*scriptCall) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pipe := p.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = c.a.Queue(ctx, pipe)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	for i, c := range batch {
		vals, err := cmds[i].Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// the script cache is empty (Redis restarted): Run loads it
			vals, err = c.a.Run(ctx, p.rdb).Slice()
		}
		c.done <- scriptResult{vals, err}
	}
}

// call runs the send script through the next pipeline.
func (p *pipeliner) call(ctx context.Context, a roomlog.Append) ([]any, error) {
	c := &scriptCall{a: a, done: make(chan scriptResult, 1)}
	select {
	case p.in <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// once queued the script will run; wait for it whatever ctx says, so a
	// sequenced message is never abandoned half-way
	r := <-c.done
	return r.vals, r.err
}
