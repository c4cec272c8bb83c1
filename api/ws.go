package api

import (
	"context"
	"net/url"
	"strings"
	"sync"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/ratelimit"
	"github.com/chatflow/chatflow/realtime"
	"github.com/chatflow/chatflow/token"
)

// wsUpgrade checks the Origin and authenticates a WebSocket upgrade before
// it happens, so a foreign page gets a 403 and a bad token a 401 problem
// instead of a socket.
func (s *Server) wsUpgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return fiber.NewError(fiber.StatusUpgradeRequired, "GET /ws needs a WebSocket upgrade")
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !wsOriginAllowed(origin, c.Get(fiber.HeaderHost), s.Cfg.WSOrigins) {
		return chatflow.Errorf(chatflow.ECodeForbidden, "origin %q may not open a WebSocket here", origin)
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

// wsOriginAllowed is the WebSocket Origin policy (against cross-site
// WebSocket hijacking: a page elsewhere using a victim's token from
// ?access_token= or their browser). Browsers always send Origin on an
// upgrade; an origin passes when its host[:port] is the request's Host (the
// page came from this site) or it is listed in WS_ORIGINS (compared without
// case and trailing slash). Requests without an Origin (native clients,
// servers) are not browsers and pass.
func wsOriginAllowed(origin, host string, allowed []string) bool {
	o := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(origin)), "/")
	for _, a := range allowed {
		if strings.TrimSuffix(strings.ToLower(strings.TrimSpace(a)), "/") == o {
			return true
		}
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.User != nil {
		return false
	}
	return host != "" && strings.EqualFold(u.Host, host)
}

const slotKey = "conn_slot"

func (s *Server) wsHandler() fiber.Handler {
	// Write buffers come from a pool: idle connections hold none.
	return websocket.New(func(ws *websocket.Conn) {
		claims := ws.Locals(claimsKey).(*token.Claims)
		slot, _ := ws.Locals(slotKey).(*ratelimit.Slot)
		release := slot.Keep()
		defer release()
		s.rt.Serve(ws, sessionOf(claims))
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
