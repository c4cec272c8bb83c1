package realtime

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow/chat"
)

// subscribe and unsubscribe do not wait for Redis: dispatch calls them from
// the receive loop, which is what delivers the confirmations.
func (h *Hub) subscribe(chans ...string)   { h.reconcile(chans, false) }
func (h *Hub) unsubscribe(chans ...string) { h.reconcile(chans, false) }

// expect registers interest in the confirmation of each channel's SUBSCRIBE.
func (h *Hub) expect(chans []string) []chan struct{} {
	h.waitMu.Lock()
	defer h.waitMu.Unlock()
	out := make([]chan struct{}, len(chans))
	for i, ch := range chans {
		out[i] = make(chan struct{})
		h.waiting[ch] = append(h.waiting[ch], out[i])
	}
	return out
}

// confirmed wakes those waiting for a channel's subscription.
func (h *Hub) confirmed(ch string) {
	h.waitMu.Lock()
	defer h.waitMu.Unlock()
	for _, w := range h.waiting[ch] {
		close(w)
	}
	delete(h.waiting, ch)
}

// pendingWaiter adds a waiter for ch if its SUBSCRIBE is not confirmed yet.
func (h *Hub) pendingWaiter(ch string) (chan struct{}, bool) {
	h.waitMu.Lock()
	defer h.waitMu.Unlock()
	if len(h.waiting[ch]) == 0 {
		return nil, false
	}
	w := make(chan struct{})
	h.waiting[ch] = append(h.waiting[ch], w)
	return w, true
}

// forget drops the waiters of subscriptions that failed; they time out.
func (h *Hub) forget(chans []string) {
	h.waitMu.Lock()
	defer h.waitMu.Unlock()
	for _, ch := range chans {
		delete(h.waiting, ch)
	}
}

// reconcile makes the Redis subscriptions of chans match whether any local
// connection still needs them, at the moment the command is sent. With
// wait, it returns once Redis has confirmed every wanted channel of chans,
// including those another connection subscribed a moment ago.
func (h *Hub) reconcile(chans []string, wait bool) {
	if len(chans) == 0 {
		return
	}
	h.subMu.Lock()
	var sub, unsub []string
	var waits []chan struct{}
	h.mu.RLock()
	for _, ch := range chans {
		want := h.wantedLocked(ch)
		switch have := h.subscribed[ch]; {
		case want && !have:
			sub = append(sub, ch)
		case !want && have:
			unsub = append(unsub, ch)
		case want && have && wait:
			if w, ok := h.pendingWaiter(ch); ok {
				waits = append(waits, w)
			}
		}
	}
	h.mu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if len(sub) > 0 {
		// every SUBSCRIBE is tracked until confirmed, so that a later
		// waiter on the same channel knows to wait
		subWaits := h.expect(sub)
		if wait {
			waits = append(waits, subWaits...)
		}
		if err := h.ps.Subscribe(ctx, sub...); err != nil {
			h.log.Error("subscribe", "channels", len(sub), "error", err)
			h.forget(sub)
		} else {
			for _, ch := range sub {
				h.subscribed[ch] = true
			}
		}
	}
	if len(unsub) > 0 {
		// after shutdown the PubSub is closed, which drops every subscription anyway
		if err := h.ps.Unsubscribe(ctx, unsub...); err != nil && !errors.Is(err, redis.ErrClosed) {
			h.log.Warn("unsubscribe", "channels", len(unsub), "error", err)
		}
		for _, ch := range unsub {
			delete(h.subscribed, ch)
		}
	}
	// Wait without subMu: the receive loop, which delivers confirmations,
	// may need it (dispatch subscribes the rooms of invites).
	h.subMu.Unlock()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			h.log.Warn("subscription not confirmed in time", "channels", len(chans))
			return
		}
	}
}

func (h *Hub) wantedLocked(ch string) bool {
	switch kind, id := chat.ParseChannel(ch); kind {
	case 'r':
		return len(h.rooms[id]) > 0
	case 'u':
		return len(h.users[id]) > 0
	}
	return false
}
