package api

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// scriptCall is one run of the send script waiting for a pipeline.
type scriptCall struct {
	keys []string
	args []any
	done chan scriptResult
}

type scriptResult struct {
	vals []any
	err  error
}

// Pipeliner sends the accept script of many connections to Redis together:
// the sends that arrive while a pipeline is on the wire go out in the next
// one, so under load each round trip (and each syscall on both sides)
// carries many messages. Redis runs them in order; a connection waits for
// its own result, so each sender's messages keep their order.
type Pipeliner struct {
	rdb redis.UniversalClient
	in  chan *scriptCall
}

// maxPipeline caps the scripts per round trip.
const maxPipeline = 256

func newPipeliner(rdb redis.UniversalClient) *Pipeliner {
	return &Pipeliner{rdb: rdb, in: make(chan *scriptCall, 4*maxPipeline)}
}

// run sends pipelines with a few workers until ctx ends.
func (p *Pipeliner) run(ctx context.Context, workers int) {
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

func (p *Pipeliner) exec(batch []*scriptCall) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pipe := p.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = sendScript.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	for i, c := range batch {
		vals, err := cmds[i].Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// the script cache is empty (Redis restarted): Run loads it
			vals, err = sendScript.Run(ctx, p.rdb, c.keys, c.args...).Slice()
		}
		c.done <- scriptResult{vals, err}
	}
}

// call runs the send script through the next pipeline.
func (p *Pipeliner) call(ctx context.Context, keys []string, args []any) ([]any, error) {
	c := &scriptCall{keys: keys, args: args, done: make(chan scriptResult, 1)}
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
