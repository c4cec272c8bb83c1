package api

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
)

// Users as other users see them: the caller's profile, search and friends.

type userView struct {
	UserID        string `json:"user_id"`
	Username      string `json:"username"`
	DisplayName   string `json:"display_name"`
	StatusMessage string `json:"status_message"`
	// AvatarURL is GET /users/{id}/avatar with a cache buster; absent
	// when the user has no avatar.
	AvatarURL string `json:"avatar_url,omitempty"`
}

func profileView(p db.ChatProfile) userView {
	return userView{
		UserID: p.UserID.String(), Username: p.Username, DisplayName: p.DisplayName, StatusMessage: p.StatusMessage,
		AvatarURL: avatarURL(p.UserID, p.AvatarKey, p.AvatarVersion),
	}
}

func (s *Server) updateMe(c *fiber.Ctx) error {
	var req struct {
		DisplayName   *string `json:"display_name"`
		StatusMessage *string `json:"status_message"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.DisplayName != nil {
		*req.DisplayName = strings.TrimSpace(*req.DisplayName)
		if err := chatflow.ValidDisplayName(*req.DisplayName); err != nil {
			return err
		}
	}
	if req.StatusMessage != nil {
		if err := chatflow.ValidStatusMessage(*req.StatusMessage); err != nil {
			return err
		}
	}
	ctx, me := c.UserContext(), userID(c)
	p, err := s.Queries.UpdateProfile(ctx, db.UpdateProfileParams{UserID: me, DisplayName: req.DisplayName, StatusMessage: req.StatusMessage})
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "profile not found")
	}
	if err != nil {
		return err
	}
	v := profileView(p)
	rooms, err := s.Queries.UserRoomIDs(ctx, me)
	if err == nil {
		for _, r := range rooms {
			_ = s.chat.Publish(ctx, chat.RoomChannel(r.String()), map[string]any{
				"type": "profile", "room_id": r.String(), "user_id": v.UserID, "display_name": v.DisplayName, "status_message": v.StatusMessage,
				"avatar_url": v.AvatarURL,
			})
		}
	}
	return c.JSON(v)
}

func (s *Server) searchUsers(c *fiber.Ctx) error {
	q := strings.TrimSpace(c.Query("q"))
	if err := chatflow.ValidSearchQuery(q); err != nil {
		return err
	}
	if err := chatflow.ValidCursor("after", c.Query("after")); err != nil {
		return err
	}
	limit, err := pageLimit(c, chatflow.MaxUserSearch, chatflow.MaxUserSearch)
	if err != nil {
		return err
	}
	// LIKE wildcards in the query are literal characters, not patterns.
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q)
	rows, err := s.Queries.SearchProfiles(c.UserContext(), db.SearchProfilesParams{Prefix: esc, After: c.Query("after"), Lim: int32(limit)})
	if err != nil {
		return err
	}
	out := make([]userView, len(rows))
	for i, r := range rows {
		out[i] = profileView(r)
	}
	// The contract's answer is a bare array; the next page's cursor rides in
	// a header (pass it back as ?after=).
	if len(rows) == int(limit) {
		c.Set("X-Next-After", rows[len(rows)-1].Username)
	}
	return c.JSON(out)
}

// friendView is a friend with presence: online, or when last seen.
type friendView struct {
	userView
	Online     bool       `json:"online"`
	LastSeenAt *time.Time `json:"last_seen_at"`
}

func (s *Server) listFriends(c *fiber.Ctx) error {
	ctx := c.UserContext()
	rows, err := s.Queries.ListFriends(ctx, userID(c))
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		ids[i] = r.UserID
	}
	online := s.chat.Online(ctx, ids)
	seen, err := s.lastSeen(ctx, ids, online)
	if err != nil {
		return err
	}
	out := make([]friendView, len(rows))
	for i, r := range rows {
		out[i] = friendView{userView: profileView(r), Online: online[i], LastSeenAt: seen[i]}
	}
	return c.JSON(out) // the contract lists the friends themselves
}
