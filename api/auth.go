package api

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/token"
)

const claimsKey = "claims"

// bearer extracts the access token from the Authorization header, or from
// ?access_token= for WebSocket clients (browsers cannot set headers there).
func bearer(c *fiber.Ctx, allowQuery bool) string {
	h := c.Get(fiber.HeaderAuthorization)
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if allowQuery {
		return c.Query("access_token")
	}
	return ""
}

func (s *Server) authenticate(c *fiber.Ctx, allowQuery bool) (*token.Claims, error) {
	raw := bearer(c, allowQuery)
	if raw == "" {
		return nil, chatflow.Errorf(chatflow.ECodeUnauthorized, "missing bearer token")
	}
	return s.verifyAccess(c.UserContext(), raw)
}

// verifyAccess checks an access token: the one check of requests, socket
// upgrades and WebSocket auth frames.
func (s *Server) verifyAccess(ctx context.Context, raw string) (*token.Claims, error) {
	claims, err := s.Tokens.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if _, err := uuid.Parse(claims.Subject); err != nil {
		return nil, chatflow.Errorf(chatflow.ECodeInvalidToken, "token subject is not a user id")
	}
	return claims, nil
}

func (s *Server) requireAuth(c *fiber.Ctx) error {
	claims, err := s.authenticate(c, false)
	if err != nil {
		return err
	}
	c.Locals(claimsKey, claims)
	return c.Next()
}

// requireAdmin lets through a token with the admin role whose user still
// holds the role in the database (granted by `chatflow admin grant`), so
// that a revocation takes effect at once rather than at the next refresh.
func (s *Server) requireAdmin(c *fiber.Ctx) error {
	claims := claimsOf(c)
	if claims.Role != roleAdmin {
		return chatflow.Errorf(chatflow.ECodeForbidden, "admin role required")
	}
	u, err := s.Queries.GetUserByID(c.UserContext(), userID(c))
	if err != nil && !isNotFound(err) {
		return err
	}
	if err != nil || u.Role != roleAdmin || u.Status != "active" {
		return chatflow.Errorf(chatflow.ECodeForbidden, "admin role required")
	}
	return c.Next()
}

// roleAdmin is the role `chatflow admin grant` sets in auth.users.
const roleAdmin = "admin"

func claimsOf(c *fiber.Ctx) *token.Claims { return c.Locals(claimsKey).(*token.Claims) }

// userID is the caller's id; requireAuth guarantees it parses.
func userID(c *fiber.Ctx) uuid.UUID { return uuid.MustParse(claimsOf(c).Subject) }

func (s *Server) login(c *fiber.Ctx) error {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" {
		return chatflow.Errorf(chatflow.ECodeValidation, "username and password are required")
	}
	// Charged before the password is checked: every attempt counts, for the
	// address and for the username, on whichever node it lands.
	if err := s.limits.Login(c.UserContext(), s.clientIP(c), req.Username); err != nil {
		return err
	}
	// Sessions revoked after this instant (password change, disable) win
	// over this login: IssueAfter refuses it.
	checked := time.Now()
	u, err := s.Queries.GetUserByUsername(c.UserContext(), strings.TrimSpace(req.Username))
	if err != nil && !isNotFound(err) {
		return err
	}
	hash := s.dummyHash
	if err == nil {
		hash = []byte(u.PasswordHash)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(req.Password)) != nil || err != nil ||
		(u.Status != statusActive && u.Status != statusDisabled) {
		return chatflow.Errorf(chatflow.ECodeInvalidCredentials, "username or password is wrong")
	}
	// Only the right password learns that the account is disabled.
	if u.Status == statusDisabled {
		return chatflow.Errorf(chatflow.ECodeAccountDisabled, "the account is disabled")
	}
	pair, err := s.Tokens.IssueAfter(c.UserContext(), checked, u.ID.String(), u.Username, u.Role, "")
	if err != nil {
		return err
	}
	s.recordLogin(c.UserContext(), u.ID)
	return c.JSON(pair)
}

func (s *Server) refresh(c *fiber.Ctx) error {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return chatflow.Errorf(chatflow.ECodeValidation, "refresh_token is required")
	}
	pair, err := s.Tokens.Refresh(c.UserContext(), req.RefreshToken, func(ctx context.Context, id string) (string, string, error) {
		uid, err := uuid.Parse(id)
		if err != nil {
			return "", "", chatflow.Errorf(chatflow.ECodeInvalidToken, "bad subject")
		}
		u, err := s.Queries.GetUserByID(ctx, uid)
		if isNotFound(err) || (err == nil && u.Status != "active") {
			return "", "", chatflow.Errorf(chatflow.ECodeInvalidToken, "user no longer exists")
		}
		if err != nil {
			return "", "", err
		}
		return u.Username, u.Role, nil
	})
	if err != nil {
		return err
	}
	return c.JSON(pair)
}

func (s *Server) logout(c *fiber.Ctx) error {
	claims := claimsOf(c)
	// WebSockets of this session, on any node, close too (sessionRevoked).
	if err := s.Tokens.Logout(c.UserContext(), claims); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
