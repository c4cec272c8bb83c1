package realtime

import (
	"encoding/json"
	"runtime"
	"time"

	"github.com/gofiber/contrib/websocket"
)

// Write queues one frame without blocking; a client that lets its queue
// fill up is disconnected so memory stays bounded.
func (c *Conn) Write(frame []byte) {
	c.qmu.Lock()
	if c.done {
		c.qmu.Unlock()
		return
	}
	if len(c.q) >= c.node.cfg.Queue {
		c.qmu.Unlock()
		c.node.metrics.slowDropped.Inc()
		c.close("slow reader: send queue full")
		return
	}
	c.q = append(c.q, frame)
	if !c.writing {
		c.writing = true
		c.wg.Add(1)
		go c.flush()
	}
	c.qmu.Unlock()
}

// writeDroppable queues a frame that only matters now (typing): when the
// queue is half full it is dropped instead, so a connection busy with a
// replay on a slow link is not disconnected for other people's typing.
func (c *Conn) writeDroppable(frame []byte) {
	c.qmu.Lock()
	busy := len(c.q) >= c.node.cfg.Queue/2
	c.qmu.Unlock()
	if busy {
		c.node.metrics.dropped.Inc()
		return
	}
	c.Write(frame)
}

// WriteMany queues frames in order, as Write does each.
func (c *Conn) WriteMany(frames ...[]byte) {
	for _, f := range frames {
		c.Write(f)
	}
}

// ping queues a ping; the hub calls it for every connection periodically.
func (c *Conn) ping() { c.Write(nil) }

// flush writes queued frames until the queue is empty, then exits. All
// frames waiting at once go out in one write: under load that is one
// syscall for many frames instead of one each. A flusher exists only while
// the queue is non-empty, so an idle connection costs no goroutine and no
// buffer.
func (c *Conn) flush() {
	defer c.wg.Done()
	var buf []byte
	for {
		if c.node.cfg.FlushYield {
			runtime.Gosched()
		}
		c.qmu.Lock()
		batch := c.q
		c.q = nil
		if len(batch) == 0 || c.done {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		buf = buf[:0]
		frames := 0
		for _, b := range batch {
			if b == nil {
				buf = append(buf, 0x89, 0x00) // ping, no payload
				continue
			}
			buf = appendTextFrame(buf, b)
			frames++
		}
		if err := c.writeRaw(buf); err != nil {
			c.close("write failed")
			c.qmu.Lock()
			c.writing = false
			c.qmu.Unlock()
			return
		}
		c.node.metrics.framesOut.Add(float64(frames))
		c.node.metrics.writes.Inc()
		if cap(buf) > 64<<10 {
			buf = nil // do not keep a burst's buffer around
		}
	}
}

// appendTextFrame appends one unmasked, final text frame (RFC 6455 §5.2):
// what a server sends, byte for byte what WriteMessage would produce.
func appendTextFrame(buf, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		buf = append(buf, 0x81, byte(n))
	case n <= 0xffff:
		buf = append(buf, 0x81, 126, byte(n>>8), byte(n))
	default:
		buf = append(buf, 0x81, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(buf, payload...)
}

// writeRaw writes ready-made frames straight to the socket. It holds wmu,
// like every other writer, so it never interleaves with a frame that the
// websocket library is writing.
func (c *Conn) writeRaw(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isClosed() {
		return errConnClosed
	}
	nc := c.ws.NetConn()
	_ = nc.SetWriteDeadline(time.Now().Add(writeWait))
	_, err := nc.Write(p)
	return err
}

// writeNow puts one frame on the socket, bypassing the queue; writers take turns.
func (c *Conn) writeNow(mt int, b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isClosed() {
		return errConnClosed
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	return c.ws.WriteMessage(mt, b)
}

// sendBulk writes a replayed frame straight to the socket, paced by the
// client's reading (it asked for these) rather than through the bounded
// live queue; false once the connection is closed.
func (c *Conn) sendBulk(fr []byte) bool {
	if err := c.writeNow(websocket.TextMessage, fr); err != nil {
		c.close("slow reader during sync")
		return false
	}
	c.node.metrics.framesOut.Inc()
	return true
}

func (c *Conn) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	c.Write(b)
}
