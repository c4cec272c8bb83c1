package api

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
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

func (s *Server) requireAdmin(c *fiber.Ctx) error {
	if claimsOf(c).Role != "admin" {
		return chatflow.Errorf(chatflow.ECodeForbidden, "admin role required")
	}
	return c.Next()
}

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
	u, err := s.Queries.GetUserByUsername(c.UserContext(), strings.TrimSpace(req.Username))
	if err != nil && !isNotFound(err) {
		return err
	}
	hash := s.dummyHash
	if err == nil {
		hash = []byte(u.PasswordHash)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(req.Password)) != nil || err != nil || u.Status != "active" {
		return chatflow.Errorf(chatflow.ECodeInvalidCredentials, "username or password is wrong")
	}
	pair, err := s.Tokens.Issue(c.UserContext(), u.ID.String(), u.Username, s.roleOf(u), "")
	if err != nil {
		return err
	}
	return c.JSON(pair)
}

func (s *Server) roleOf(u db.AuthUser) string {
	if slices.Contains(s.Cfg.AdminUsernames, u.Username) {
		return "admin"
	}
	return u.Role
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
		return u.Username, s.roleOf(u), nil
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

type accountView struct {
	Balance int64 `json:"balance"`
}

type meView struct {
	UserID        string      `json:"user_id"`
	Username      string      `json:"username"`
	DisplayName   string      `json:"display_name"`
	StatusMessage string      `json:"status_message"`
	Email         string      `json:"email"`
	Role          string      `json:"role"`
	Account       accountView `json:"account"`
}

func (s *Server) me(c *fiber.Ctx) error {
	ctx, id := c.UserContext(), userID(c)
	u, err := s.Queries.GetUserByID(ctx, id)
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "user not found")
	}
	if err != nil {
		return err
	}
	p, err := s.Queries.GetProfile(ctx, id)
	if err != nil && !isNotFound(err) {
		return err
	}
	acct, err := s.Queries.GetAccount(ctx, id)
	if err != nil && !isNotFound(err) {
		return err
	}
	return c.JSON(meView{
		UserID: u.ID.String(), Username: u.Username, DisplayName: p.DisplayName, StatusMessage: p.StatusMessage,
		Email: u.Email, Role: s.roleOf(u), Account: accountView{Balance: acct.Balance},
	})
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, errNoRows) }
