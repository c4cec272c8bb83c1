// Package realtime is the WebSocket side of an api node: connections, their
// outbound queues, frame decoding and dispatch, sync replay, and the hub
// that routes Redis pub/sub events to the connections of this node. It
// drives the message core (chat) and knows nothing of HTTP routes.
package realtime

import (
	"context"
	"log/slog"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow/chat"
)

// Config tunes connections.
type Config struct {
	// SendRate and SendBurst limit inbound frames per second per connection.
	SendRate  float64
	SendBurst int
	// Queue is the per-connection outbound queue in frames; a reader that
	// lets it fill up is disconnected.
	Queue int
	// FlushYield lets other goroutines run once before each write, so
	// frames that become ready together (an ack and the sender's own
	// message, a burst of a room) share one syscall. Off by default: it raised frames
	// per write at 5,000 msg/s, but in five A/B pairs the accepted rate
	// did not follow (BENCHMARKS.md, round 3).
	FlushYield bool
}

// DefaultConfig is the configuration `make dev` runs with.
func DefaultConfig() Config {
	return Config{SendRate: 50, SendBurst: 100, Queue: 1024}
}

// Session is who a connection belongs to, from its access token.
type Session struct {
	UserID uuid.UUID
	// Family is the token family; logging that session out (or a replay of
	// one of its refresh tokens) closes the socket.
	Family string
	// TokenID is the access token's id (jti), for the revocation check.
	TokenID string
	// Expires is when the access token expires: the socket is closed then
	// unless the client sends a fresh token in an auth frame first. Zero:
	// never.
	Expires time.Time
}

// Auth checks access tokens for the WebSocket side exactly as the HTTP side
// checks them.
type Auth interface {
	// Authenticate verifies an access token (signature, claims, expiry,
	// revocation) and returns its session.
	Authenticate(ctx context.Context, raw string) (Session, error)
	// Revoked reports whether a session verified earlier was revoked since.
	Revoked(ctx context.Context, s Session) (bool, error)
}

// Node holds this api node's WebSocket connections.
type Node struct {
	cfg     Config
	chat    *chat.Service
	hub     *Hub
	log     *slog.Logger
	metrics *Metrics
	// sendGate, if set, may refuse a user's send before it is accepted
	// (the per-user limit shared by every node).
	sendGate func(ctx context.Context, user uuid.UUID) error
	auth     Auth
}

// SetSendGate installs a check every send frame passes before the message
// core sees it; its error is answered with an error frame.
func (n *Node) SetSendGate(gate func(ctx context.Context, user uuid.UUID) error) { n.sendGate = gate }

// SetAuth sets how auth frames and revocations are checked; without it
// sockets cannot renew their session.
func (n *Node) SetAuth(a Auth) { n.auth = a }

// New wires the WebSocket side of a node to its message core.
func New(cfg Config, svc *chat.Service, log *slog.Logger) *Node {
	n := &Node{cfg: cfg, chat: svc, log: log, metrics: newMetrics()}
	var ps PubSub
	if cc, ok := svc.Redis().(*redis.ClusterClient); ok {
		ps = newShardedPubSub(cc, log)
	} else {
		ps = svc.Subscribe(context.Background())
	}
	n.hub = newHub(ps, log, n.metrics)
	return n
}

// Metrics returns the WebSocket metrics.
func (n *Node) Metrics() *Metrics { return n.metrics }

// Run routes pub/sub events to connections until ctx ends.
func (n *Node) Run(ctx context.Context) { n.hub.run(ctx) }

// CloseAll disconnects every client (shutdown); they reconnect elsewhere and sync.
func (n *Node) CloseAll() { n.hub.closeAll() }

// Serve runs one connection until it ends. The caller has authenticated it.
//
// The user's channel is subscribed (and confirmed by Redis) before anything
// else, so every event published from then on reaches the connection:
// a logout that happened before is caught by the revocation check that
// follows, and membership events arriving while the rooms load from
// Postgres are applied on top of them (see Hub.addRooms), so the
// connection's rooms cannot go stale.
func (n *Node) Serve(ws *websocket.Conn, s Session) {
	c := newConn(n, ws, s)
	defer c.cancel()
	n.hub.addUser(c)
	defer n.hub.unregister(c)
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	if n.auth != nil && s.TokenID != "" {
		if revoked, err := n.auth.Revoked(ctx, s); err == nil && revoked {
			cancel()
			c.closeWith(sessionFrame("revoked"), "session revoked")
			c.wg.Wait()
			return
		}
	}
	rooms, err := n.chat.UserRooms(ctx, s.UserID)
	cancel()
	if err != nil {
		n.log.Error("ws: load rooms", "user", c.user, "error", err)
		c.closeCode = websocket.CloseInternalServerErr
		c.close("try again")
		c.wg.Wait()
		return
	}
	n.hub.addRooms(c, rooms)
	c.armExpiry()
	n.presence(c, true)
	c.readLoop()
	c.close("client gone")
	c.wg.Wait() // the socket is released when this handler returns
	n.hub.unregister(c)
	n.presence(c, false)
}

// presence announces the connection's user online/offline to its rooms
// (kept current by room events).
func (n *Node) presence(c *Conn, online bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.chat.Presence(ctx, c.user, c.roomList(), online)
}

// Crash makes the node behave, for presence, as if its process had died:
// heartbeats stop and closing its sockets leaves their presence in Redis,
// for the other nodes to end. A test hook: a real crash needs none.
func (n *Node) Crash() { n.chat.Crash() }
