package api

import (
	"context"
	"sync"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow/realtime"
	"github.com/chatflow/chatflow/token"
)

// wsUpgrade authenticates a WebSocket upgrade before it happens, so a bad
// token gets a 401 problem instead of a socket.
func (s *Server) wsUpgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return fiber.NewError(fiber.StatusUpgradeRequired, "GET /ws needs a WebSocket upgrade")
	}
	claims, err := s.authenticate(c, true)
	if err != nil {
		return err
	}
	c.Locals(claimsKey, claims)
	return c.Next()
}

func (s *Server) wsHandler() fiber.Handler {
	// Write buffers come from a pool: idle connections hold none.
	return websocket.New(func(ws *websocket.Conn) {
		s.rt.Serve(ws, sessionOf(ws.Locals(claimsKey).(*token.Claims)))
	}, websocket.Config{ReadBufferSize: 1024, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{}})
}

// sessionOf is the WebSocket session of verified access-token claims.
func sessionOf(c *token.Claims) realtime.Session {
	s := realtime.Session{UserID: uuid.MustParse(c.Subject), Family: c.Family, TokenID: c.ID}
	if c.ExpiresAt != nil {
		s.Expires = c.ExpiresAt.Time
	}
	return s
}

// wsAuth checks the tokens of auth frames exactly as requests are checked.
type wsAuth struct{ s *Server }

func (a wsAuth) Authenticate(ctx context.Context, raw string) (realtime.Session, error) {
	c, err := a.s.verifyAccess(ctx, raw)
	if err != nil {
		return realtime.Session{}, err
	}
	return sessionOf(c), nil
}

func (a wsAuth) Revoked(ctx context.Context, rs realtime.Session) (bool, error) {
	return a.s.Tokens.Revoked(ctx, rs.Family, rs.TokenID)
}

// sessionRevoked closes the sockets of a revoked session family on every
// node: each gets a "session revoked" frame, then closes (token.OnRevoke).
func (s *Server) sessionRevoked(ctx context.Context, userID, family string) {
	if err := s.publish(ctx, userChannel(userID), roomEvent{Type: "session", Event: "revoked", Family: family}); err != nil {
		s.Log.Warn("session revoked: publish", "user", userID, "error", err)
	}
}
