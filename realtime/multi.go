package realtime

import (
	"context"
	"errors"
	"hash/fnv"
)

// multiPubSub spreads one Redis's channels over several subscriber
// connections, each channel on the connection its name hashes to, so that
// reading and dispatching frames runs on several goroutines (Hub.run runs
// one receive loop per part). A channel stays on one connection, so its
// frames keep their order; frames of different channels may interleave
// differently than they were published, as on a Redis Cluster, which the
// hub already allows for.
type multiPubSub struct {
	parts []PubSub
}

func (m *multiPubSub) part(ch string) int {
	h := fnv.New32a()
	h.Write([]byte(ch))
	return int(h.Sum32() % uint32(len(m.parts)))
}

// byPart groups channels by the part they belong to.
func (m *multiPubSub) byPart(chans []string) [][]string {
	out := make([][]string, len(m.parts))
	for _, ch := range chans {
		i := m.part(ch)
		out[i] = append(out[i], ch)
	}
	return out
}

func (m *multiPubSub) Subscribe(ctx context.Context, chans ...string) error {
	var errs []error
	for i, g := range m.byPart(chans) {
		if len(g) > 0 {
			errs = append(errs, m.parts[i].Subscribe(ctx, g...))
		}
	}
	return errors.Join(errs...)
}

func (m *multiPubSub) Unsubscribe(ctx context.Context, chans ...string) error {
	var errs []error
	for i, g := range m.byPart(chans) {
		if len(g) > 0 {
			errs = append(errs, m.parts[i].Unsubscribe(ctx, g...))
		}
	}
	return errors.Join(errs...)
}

// Receive is not used: the hub receives from each part.
func (m *multiPubSub) Receive(ctx context.Context) (any, error) {
	return nil, errors.New("multiPubSub: receive from its parts")
}

func (m *multiPubSub) Close() error {
	var errs []error
	for _, p := range m.parts {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}
