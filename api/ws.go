package api

import (
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
		claims := ws.Locals(claimsKey).(*token.Claims)
		s.rt.Serve(ws, realtime.Session{UserID: uuid.MustParse(claims.Subject), Family: claims.Family})
	}, websocket.Config{ReadBufferSize: 1024, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{}})
}
