package realtime

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// shardedPubSub is the hub's PubSub on a Redis Cluster: sharded pub/sub
// (SSUBSCRIBE), one subscriber connection per master, each channel
// subscribed on the master of its slot. go-redis's own cluster PubSub
// cannot serve it: it pins one connection to the node of the first channel,
// and it resubscribes after a reconnect with one SSUBSCRIBE of every
// channel, which Redis refuses (CROSSSLOT) once they span slots.
//
// So each connection is replaced whole on any error (a dropped connection,
// a MOVED after a resharding, a CROSSSLOT from go-redis's resubscribe): its
// channels are routed again from a reloaded slot map and subscribed one
// SSUBSCRIBE per slot. A channel whose slot moves away is unsubscribed by
// Redis (an "sunsubscribe" nobody asked for); it is routed again alone.
// Frames published while a connection is being replaced are lost, as they
// are while a single Redis's subscriber reconnects; clients catch up by
// seq (sync). Within a channel, frames keep their order: a channel is on
// one connection at a time, and every connection feeds one queue.
type shardedPubSub struct {
	cc  *redis.ClusterClient
	log *slog.Logger
	out chan any

	done      chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex
	shards map[string]*shard // master address → its subscriber
	where  map[string]*shard // channel → the subscriber it is on
}

// shard is one subscriber connection, to one master.
type shard struct {
	addr string
	ps   *redis.PubSub
	// chans are the channels subscribed here; unsubs counts the
	// SUNSUBSCRIBEs sent per channel whose confirmation is still due.
	chans  map[string]struct{}
	unsubs map[string]int
}

func newShardedPubSub(cc *redis.ClusterClient, log *slog.Logger) *shardedPubSub {
	return &shardedPubSub{
		cc: cc, log: log, out: make(chan any, 1024), done: make(chan struct{}),
		shards: map[string]*shard{}, where: map[string]*shard{},
	}
}

// Subscribe subscribes each channel on the master of its slot.
func (s *shardedPubSub) Subscribe(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscribeLocked(ctx, channels)
}

func (s *shardedPubSub) subscribeLocked(ctx context.Context, channels []string) error {
	select {
	case <-s.done:
		return redis.ErrClosed
	default:
	}
	var firstErr error
	for _, group := range bySlot(channels) {
		node, err := s.cc.MasterForKey(ctx, group[0])
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		sh := s.shardLocked(node)
		for _, ch := range group {
			if old := s.where[ch]; old != nil && old != sh {
				delete(old.chans, ch)
			}
			s.where[ch] = sh
			sh.chans[ch] = struct{}{}
		}
		// a failed write breaks the connection; its receive loop then
		// replaces it and subscribes every channel again
		if err := sh.ps.SSubscribe(ctx, group...); err != nil {
			s.log.Warn("sharded pubsub: ssubscribe", "node", sh.addr, "error", err)
		}
	}
	return firstErr
}

// shardLocked is the subscriber of a master, started on first use.
func (s *shardedPubSub) shardLocked(node *redis.Client) *shard {
	addr := node.Options().Addr
	if sh := s.shards[addr]; sh != nil {
		return sh
	}
	sh := &shard{addr: addr, ps: node.SSubscribe(context.Background()), chans: map[string]struct{}{}, unsubs: map[string]int{}}
	s.shards[addr] = sh
	go s.receive(sh)
	return sh
}

// Unsubscribe drops channels from the masters they are subscribed on.
func (s *shardedPubSub) Unsubscribe(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	per := map[*shard][]string{}
	for _, ch := range channels {
		if sh := s.where[ch]; sh != nil {
			delete(s.where, ch)
			delete(sh.chans, ch)
			sh.unsubs[ch]++
			per[sh] = append(per[sh], ch)
		}
	}
	var firstErr error
	for sh, chans := range per {
		for _, group := range bySlot(chans) {
			if err := sh.ps.SUnsubscribe(ctx, group...); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// Receive returns the next message or subscription from any master.
func (s *shardedPubSub) Receive(ctx context.Context) (any, error) {
	select {
	case m := <-s.out:
		return m, nil
	case <-s.done:
		return nil, redis.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close closes every subscriber connection.
func (s *shardedPubSub) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, sh := range s.shards {
			_ = sh.ps.Close()
		}
	})
	return nil
}

// receive forwards one connection's frames until it fails, then replaces it.
func (s *shardedPubSub) receive(sh *shard) {
	ctx := context.Background()
	for {
		msg, err := sh.ps.Receive(ctx)
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			s.replace(sh, err)
			return
		}
		if sub, ok := msg.(*redis.Subscription); ok && sub.Kind == "sunsubscribe" && !s.expected(sh, sub.Channel) {
			go s.reroute(sh, sub.Channel)
			continue
		}
		select {
		case s.out <- msg:
		case <-s.done:
			return
		}
	}
}

// expected reports whether an sunsubscribe of ch is the answer to one of
// ours, rather than Redis dropping a channel whose slot moved.
func (s *shardedPubSub) expected(sh *shard, ch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh.unsubs[ch] > 0 {
		if sh.unsubs[ch]--; sh.unsubs[ch] == 0 {
			delete(sh.unsubs, ch)
		}
		return true
	}
	return s.where[ch] != sh // not wanted here any more anyway
}

// reroute subscribes ch again, on the master that holds its slot now.
func (s *shardedPubSub) reroute(sh *shard, ch string) {
	s.cc.ReloadState(context.Background())
	time.Sleep(100 * time.Millisecond) // the reload is lazy
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.where[ch] != sh {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.log.Info("sharded pubsub: channel moved", "channel", ch, "from", sh.addr)
	_ = s.subscribeLocked(ctx, []string{ch})
}

// replace closes a failed connection and subscribes its channels again,
// each on the master of its slot after reloading the slot map.
func (s *shardedPubSub) replace(sh *shard, cause error) {
	s.log.Warn("sharded pubsub: connection failed; subscribing again", "node", sh.addr, "error", cause)
	s.mu.Lock()
	if s.shards[sh.addr] == sh {
		delete(s.shards, sh.addr)
	}
	_ = sh.ps.Close()
	s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		s.cc.ReloadState(context.Background())
		select {
		case <-s.done:
			return
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, time.Second)):
		}
		s.mu.Lock()
		var chans []string
		for ch := range sh.chans {
			if s.where[ch] == sh {
				chans = append(chans, ch)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.subscribeLocked(ctx, chans)
		cancel()
		s.mu.Unlock()
		if err == nil {
			return
		}
		s.log.Warn("sharded pubsub: subscribing again", "node", sh.addr, "error", err)
	}
}

// bySlot groups channels by hash slot: one SSUBSCRIBE may name channels of
// one slot only.
func bySlot(channels []string) [][]string {
	if len(channels) == 1 {
		return [][]string{channels}
	}
	idx := map[int]int{}
	var out [][]string
	for _, ch := range channels {
		slot := keySlot(ch)
		i, ok := idx[slot]
		if !ok {
			i = len(out)
			idx[slot] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], ch)
	}
	return out
}
