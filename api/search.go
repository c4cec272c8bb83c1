package api

import (
	"encoding/base64"
	"html"
	"regexp"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
)

// Message search: full-text search over the text messages of the caller's
// rooms (sql/migrations/0009_message_search.sql explains the English +
// Korean document). Results are ranked by ts_rank and paged by an opaque
// cursor over (rank, room_id, seq).

const (
	// MaxSearchLimit is the largest page of message search results.
	MaxSearchLimit = 50
	// defaultSearchLimit is the page size when limit is absent.
	defaultSearchLimit = 20
)

// searchResult is a message as history shows it plus a highlighted snippet.
type searchResult struct {
	chatflow.Message
	// Snippet is HTML-escaped body text around the matches, each match in
	// <mark>…</mark>.
	Snippet string  `json:"snippet"`
	Rank    float32 `json:"rank"`
}

// hangulRun matches a run of Hangul (syllables and compatibility jamo), the
// same ranges as chat.hangul_bigrams.
var hangulRun = regexp.MustCompile(`[\x{AC00}-\x{D7A3}\x{3131}-\x{318E}]+`)

func (s *Server) searchMessages(c *fiber.Ctx) error {
	q := strings.TrimSpace(c.Query("q"))
	if err := chatflow.ValidSearchQuery(q); err != nil {
		return err
	}
	limit, err := pageLimit(c, defaultSearchLimit, MaxSearchLimit)
	if err != nil {
		return err
	}
	cur := c.Query("cursor")
	if err := chatflow.ValidCursor("cursor", cur); err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	if err := s.limits.Search(ctx, me); err != nil {
		return err
	}
	p := db.SearchMessagesParams{Q: q, UserID: me, Lim: int32(limit)}
	if cur != "" {
		if p.AfterRank, p.AfterRoom, p.AfterSeq, err = decodeSearchCursor(cur); err != nil {
			return err
		}
	}
	if raw := c.Query("room_id"); raw != "" {
		room, err := uuid.Parse(raw)
		if err != nil {
			return chatflow.Errorf(chatflow.ECodeValidation, "room_id must be a UUID")
		}
		// a room the caller is not in is 403, not an empty result
		if _, err := s.membership(ctx, room, me); err != nil {
			return err
		}
		p.RoomID = pgtype.UUID{Bytes: room, Valid: true}
	}
	rows, err := s.Queries.SearchMessages(ctx, p)
	if err != nil {
		return err
	}
	korean := hangulRun.FindAllString(q, -1)
	out := make([]searchResult, len(rows))
	for i, r := range rows {
		m := chat.FromRow(db.ChatMessage{ID: r.ID, RoomID: r.RoomID, Seq: r.Seq, SenderID: r.SenderID,
			ClientMsgID: r.ClientMsgID, Body: r.Body, SentAt: r.SentAt, Kind: r.Kind})
		out[i] = searchResult{Message: m, Snippet: renderSnippet(r.Snippet, korean), Rank: r.Rank}
	}
	var next *string
	if len(rows) == int(limit) {
		last := rows[len(rows)-1]
		n := encodeSearchCursor(last.Rank, last.RoomID, last.Seq)
		next = &n
	}
	return c.JSON(fiber.Map{"results": out, "next_cursor": next})
}

// renderSnippet turns ts_headline's output (matches between \x01 and \x02,
// < > & as \x03 \x04 \x05; message bodies cannot hold control characters)
// into escaped HTML with <mark>. ts_headline's parser sees "서울에서" as one word, so Korean
// terms, which match inside words, are marked here.
func renderSnippet(h string, korean []string) string {
	h = html.EscapeString(h) // Hangul and the markers pass through unchanged
	for _, k := range korean {
		h = strings.ReplaceAll(h, k, "\x01"+k+"\x02")
	}
	return strings.NewReplacer("\x01", "<mark>", "\x02", "</mark>", "\x03", "&lt;", "\x04", "&gt;", "\x05", "&amp;").Replace(h)
}

// The cursor is the last result's (rank, room, seq), base64url: the next
// page is everything ranked strictly after it. A float32 rank prints and
// parses back exactly.
func encodeSearchCursor(rank float32, room uuid.UUID, seq int64) string {
	s := strconv.FormatFloat(float64(rank), 'g', -1, 32) + "|" + room.String() + "|" + strconv.FormatInt(seq, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func decodeSearchCursor(cur string) (*float32, uuid.UUID, int64, error) {
	bad := chatflow.Errorf(chatflow.ECodeValidation, "cursor is not a cursor this endpoint returned")
	raw, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil {
		return nil, uuid.Nil, 0, bad
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 3 {
		return nil, uuid.Nil, 0, bad
	}
	f, err1 := strconv.ParseFloat(parts[0], 32)
	room, err2 := uuid.Parse(parts[1])
	seq, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, uuid.Nil, 0, bad
	}
	rank := float32(f)
	return &rank, room, seq, nil
}
