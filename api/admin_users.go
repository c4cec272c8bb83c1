package api

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// Admin endpoints on users (requireAdmin): list, disable, enable.

// adminUserView is a user as an admin sees it; never a hash.
type adminUserView struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	Email       string     `json:"email"`
	Role        string     `json:"role"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
	LastSeenAt  *time.Time `json:"last_seen_at"`
	DisabledAt  *time.Time `json:"disabled_at"`
}

func adminUserOf(u db.AuthUser) adminUserView {
	return adminUserView{
		ID: u.ID.String(), Username: u.Username, Email: u.Email, Role: u.Role, Status: u.Status,
		CreatedAt: u.CreatedAt.UTC(), LastLoginAt: utc(u.LastLoginAt), LastSeenAt: utc(u.LastSeenAt), DisabledAt: utc(u.DisabledAt),
	}
}

// utc is t in UTC, nil staying nil.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (s *Server) adminUsers(c *fiber.Ctx) error {
	q := strings.TrimSpace(c.Query("q"))
	if q != "" {
		if err := chatflow.ValidSearchQuery(q); err != nil {
			return err
		}
	}
	if err := chatflow.ValidCursor("cursor", c.Query("cursor")); err != nil {
		return err
	}
	limit, err := pageLimit(c, 50, 200)
	if err != nil {
		return err
	}
	// Before every user: the far future and the greatest id.
	beforeAt, beforeID := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), uuid.Max
	if cur := c.Query("cursor"); cur != "" {
		var ok bool
		if beforeAt, beforeID, ok = decodeUserCursor(cur); !ok {
			return chatflow.Errorf(chatflow.ECodeValidation, "cursor is not valid")
		}
	}
	// LIKE wildcards in q are literal characters, not patterns.
	prefix := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(q))
	rows, err := s.Queries.AdminListUsers(c.UserContext(), db.AdminListUsersParams{
		Prefix: prefix, BeforeAt: beforeAt, BeforeID: beforeID, Lim: int32(limit),
	})
	if err != nil {
		return err
	}
	out := make([]adminUserView, len(rows))
	for i, r := range rows {
		out[i] = adminUserOf(r)
	}
	resp := fiber.Map{"users": out, "next_cursor": nil}
	if len(rows) == int(limit) {
		last := rows[len(rows)-1]
		resp["next_cursor"] = encodeUserCursor(last.CreatedAt, last.ID)
	}
	return c.JSON(resp)
}

// The users cursor is the (created_at, id) to continue below, opaque to
// clients ("u", unix microseconds, ".", id; base64url). Postgres keeps
// microseconds, so the pair round-trips exactly.
func encodeUserCursor(at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte("u" + strconv.FormatInt(at.UnixMicro(), 10) + "." + id.String()))
}

func decodeUserCursor(s string) (time.Time, uuid.UUID, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) < 2 || raw[0] != 'u' {
		return time.Time{}, uuid.Nil, false
	}
	us, idText, ok := strings.Cut(string(raw[1:]), ".")
	if !ok {
		return time.Time{}, uuid.Nil, false
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, uuid.Nil, false
	}
	id, err := uuid.Parse(idText)
	if err != nil {
		return time.Time{}, uuid.Nil, false
	}
	return time.UnixMicro(n).UTC(), id, true
}

// adminDisable disables an active user and ends every session of it
// (tokens at once, sockets on every node). Repeating it on a disabled user
// answers the same view and revokes again, so a retry after a failed
// revocation completes it.
func (s *Server) adminDisable(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "user_id")
	if err != nil {
		return err
	}
	if id == userID(c) {
		return chatflow.Errorf(chatflow.ECodeValidation, "you cannot disable your own account")
	}
	ctx := c.UserContext()
	u, err := s.Queries.DisableUser(ctx, id)
	if isNotFound(err) {
		u, err = s.userInStatus(c, id, statusDisabled)
	}
	if err != nil {
		return err
	}
	// The status changes before the revocation: a login that read the user
	// as active took its time before this revocation, and IssueAfter
	// refuses it a session.
	if err := s.Tokens.RevokeUser(ctx, id.String(), ""); err != nil {
		return &chatflow.Error{Code: chatflow.ECodeUnavailable, Detail: "the account is disabled but its sessions could not be ended yet; repeat the request", Err: err}
	}
	return c.JSON(adminUserOf(u))
}

// adminEnable puts a disabled user back to active (idempotent).
func (s *Server) adminEnable(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "user_id")
	if err != nil {
		return err
	}
	u, err := s.Queries.EnableUser(c.UserContext(), id)
	if isNotFound(err) {
		u, err = s.userInStatus(c, id, statusActive)
	}
	if err != nil {
		return err
	}
	return c.JSON(adminUserOf(u))
}

// userInStatus is the answer when a status change found nothing to do:
// the user as it is if it already has want, 404 if it does not exist,
// 409 if it is in a status the change does not apply to.
func (s *Server) userInStatus(c *fiber.Ctx, id uuid.UUID, want string) (db.AuthUser, error) {
	u, err := s.Queries.GetUserByID(c.UserContext(), id)
	if isNotFound(err) {
		return u, chatflow.Errorf(chatflow.ECodeNotFound, "user %s not found", id)
	}
	if err != nil {
		return u, err
	}
	if u.Status != want {
		return u, chatflow.Errorf(chatflow.ECodeConflict, "the user is %s", u.Status)
	}
	return u, nil
}
