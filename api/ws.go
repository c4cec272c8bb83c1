package api

import (
	"sync"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow/ratelimit"
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
	// One slot per open socket, over all nodes; refused with a 429 before
	// the upgrade. A slot whose upgrade then fails lapses after ConnTTL.
	slot, err := s.limits.OpenConn(c.UserContext(), uuid.MustParse(claims.Subject))
	if err != nil {
		return err
	}
	c.Locals(slotKey, slot)
	return c.Next()
}

const slotKey = "conn_slot"

func (s *Server) wsHandler() fiber.Handler {
	// Write buffers come from a pool: idle connections hold none.
	return websocket.New(func(ws *websocket.Conn) {
		claims := ws.Locals(claimsKey).(*token.Claims)
		slot, _ := ws.Locals(slotKey).(*ratelimit.Slot)
		release := slot.Keep()
		defer release()
		s.rt.Serve(ws, realtime.Session{UserID: uuid.MustParse(claims.Subject), Family: claims.Family})
	}, websocket.Config{ReadBufferSize: 1024, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{}})
}
