package realtime

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
)

const (
	// maxSyncBuffer bounds live frames held back while a sync replays.
	maxSyncBuffer = 10000
	syncPage      = 500
)

// roomState tracks what this connection has been sent of one room, so that
// sync replays and live fan-out never send a message twice.
type roomState struct {
	last      int64 // highest seq sent
	firstLive int64 // first seq sent live (0: none yet)
	syncing   bool
	buf       [][]byte // live frames held back during a sync
}

// markSent records that live frame seq went out. firstLive..last must be
// seqs that were all sent, since replay skips that range as already sent; a
// seq that skips ahead of last+1 means fan-out lost frames (a pub/sub
// reconnect, Redis dropping a lagging subscriber), so it starts a new run and
// a later sync replays the hole instead of skipping it for good.
func (st *roomState) markSent(seq int64) {
	if st.firstLive == 0 || seq != st.last+1 {
		st.firstLive = seq
	}
	st.last = seq
}

// deliverMessage sends a live message frame unless a sync is replaying the
// room (then it is held back) or it was already sent.
func (c *Conn) deliverMessage(room string, seq int64, frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.rooms[room]
	switch {
	case st == nil:
		return
	case st.syncing:
		if len(st.buf) >= maxSyncBuffer {
			go c.close("slow reader: sync backlog")
			return
		}
		st.buf = append(st.buf, frame)
		return
	case seq <= st.last:
		return
	}
	st.markSent(seq)
	c.Write(frame)
}

// handleSync replays, per room, every message after the client's last seen
// seq, then resumes live delivery with no gap and no duplicate.
func (c *Conn) handleSync(ctx context.Context, f inFrame) {
	if len(f.Rooms) == 0 {
		c.sendError(chatflow.ECodeValidation, "sync needs rooms: {room_id: last_seq}", "sync")
		return
	}
	for roomID, last := range f.Rooms {
		room, err := uuid.Parse(roomID)
		if err != nil || last < 0 {
			c.syncError(chatflow.ECodeValidation, "sync rooms must map room ids to seqs >= 0", roomID)
			continue
		}
		roomID = room.String()
		st, err := c.syncRoom(ctx, room)
		if err != nil {
			c.syncError(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), roomID)
			continue
		}
		sent, err := c.replay(ctx, room, last, st)
		c.handOver(st, sent)
		if err != nil {
			c.syncError(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), roomID)
		}
	}
}

// syncRoom authorizes a sync of room through the same cached member set a
// send checks, brings the connection's view of the room in line with it
// (joined on an invite whose event is still on its way, dropped after a
// leave), and marks the room as syncing.
func (c *Conn) syncRoom(ctx context.Context, room uuid.UUID) (*roomState, error) {
	roomID := room.String()
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), frameTimeout)
	err := c.node.chat.Authorize(actx, c.uid, room)
	cancel()
	if err != nil {
		if chatflow.ErrorCode(err) == chatflow.ECodeNotMember {
			c.node.hub.leaveRoom(c, roomID)
		}
		return nil, err
	}
	c.mu.Lock()
	known := c.rooms[roomID] != nil
	c.mu.Unlock()
	if !known {
		c.node.hub.joinRoomWait(c, roomID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.rooms[roomID]
	if st == nil { // the connection is closing
		return nil, chatflow.Errorf(chatflow.ECodeNotMember, "not a member of that room")
	}
	st.syncing = true
	return st, nil
}

// handOver ends a room's replay: the live frames held back meanwhile go out
// by the same blocking path and never under c.mu (the hub takes it); frames
// arriving while this runs are held back too, until none is left.
func (c *Conn) handOver(st *roomState, sent int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sent > st.last {
		st.last = sent
	}
	for len(st.buf) > 0 {
		buf, top := st.buf, st.last
		st.buf = nil
		c.mu.Unlock()
		var sentLive []int64
		for _, b := range buf {
			if seq, _ := chat.FrameSeq(b); seq > top {
				if !c.sendBulk(b) {
					break
				}
				top = seq
				sentLive = append(sentLive, seq)
			}
		}
		c.mu.Lock()
		for _, seq := range sentLive { // as live sends, so holes among them are seen
			if seq > st.last {
				st.markSent(seq)
			}
		}
		if c.isClosed() {
			st.buf = nil
		}
	}
	st.syncing = false
}

// syncError answers one room of a sync. One sync frame can name over a
// thousand rooms, so its errors are written like the replay, paced by the
// client: queued, a single frame's errors could fill the live queue and
// disconnect the client as a slow reader, on every reconnect of a client
// that keeps rooms it has left in its sync.
func (c *Conn) syncError(code, detail, ref string) {
	c.node.metrics.errors.WithLabelValues(code).Inc()
	if b, err := json.Marshal(errorFrame{Type: "error", Code: code, Detail: detail, Ref: ref}); err == nil {
		c.sendBulk(b)
	}
}

// replay sends the room's messages after last, page by page, blocking on the
// socket (the client asked for them), and returns the highest seq covered.
func (c *Conn) replay(ctx context.Context, room uuid.UUID, last int64, st *roomState) (int64, error) {
	// Its own deadline too: the sync frame's budget may be spent by the
	// replays of the rooms before this one, which would fail this room.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), frameTimeout)
	cur, err := c.node.chat.CurrentSeq(cctx, room)
	cancel()
	if err != nil {
		return last, err
	}
	c.mu.Lock()
	firstLive, liveLast := st.firstLive, st.last
	c.mu.Unlock()
	for lo := last + 1; lo <= cur; lo += syncPage {
		// each page gets its own deadline: a long replay is paced by the
		// client's link, not bounded by the sync frame's handling budget
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), frameTimeout)
		frames, err := c.node.chat.FetchRange(pctx, room, lo, min(lo+syncPage-1, cur))
		if err == nil {
			frames = c.node.chat.WithSenders(pctx, frames) // one query names the page's senders
		}
		cancel()
		if err != nil {
			return lo - 1, err
		}
		for _, fr := range frames {
			if seq, _ := chat.FrameSeq(fr); firstLive > 0 && seq >= firstLive && seq <= liveLast {
				continue // already sent live on this connection
			}
			if !c.sendBulk(fr) {
				return cur, nil
			}
		}
	}
	return cur, nil
}
