package chatflow

import (
	"cmp"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Replies and reactions (issue 12).
//
// A reply is a text message whose ReplyTo names an earlier seq of the same
// room; the send script checks the bound, so a reply never points past the
// room's head.
//
// A reaction is toggled per (message, user, emoji). Each effective change
// is a message of kind KindReaction in the room's sequence, body a
// ReactionEvent in JSON, so members live and clients that sync later see it
// in order. The current set of a message is folded from those events: for
// each (user, emoji) the event with the highest seq wins, which makes the
// result independent of the order and number of times events are applied.

// KindReaction is a reaction added to or removed from the message at
// TargetSeq; the body is a ReactionEvent.
const KindReaction = "reaction"

// ECodeInvalidReply: a reply_to that is not an earlier seq of the room.
const ECodeInvalidReply = "invalid_reply"

// Reaction ops.
const (
	ReactionAdd    = "add"
	ReactionRemove = "remove"
)

// Bounds of an emoji (the reaction's key): in runes and in bytes.
const (
	MaxEmojiRunes = 8
	MaxEmojiBytes = 32
)

// ReactionEvent is the body of a KindReaction message.
type ReactionEvent struct {
	TargetSeq int64  `json:"target_seq"`
	Emoji     string `json:"emoji"`
	Op        string `json:"op"`
}

// Reaction is one emoji on a message: who reacted with it, in the order
// they did.
type Reaction struct {
	Emoji   string   `json:"emoji"`
	Count   int      `json:"count"`
	UserIDs []string `json:"user_ids"`
}

// ValidEmoji checks a reaction's emoji: 1–8 characters and at most 32 bytes
// of valid UTF-8, without whitespace or control characters (joiners and
// variation selectors, which emoji sequences need, are allowed).
func ValidEmoji(s string) error {
	if s == "" || len(s) > MaxEmojiBytes || !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxEmojiRunes {
		return Errorf(ECodeValidation, "emoji must be 1-%d characters and at most %d bytes of valid UTF-8", MaxEmojiRunes, MaxEmojiBytes)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return Errorf(ECodeValidation, "emoji must not contain whitespace or control characters")
		}
	}
	return nil
}

// ReactionOp is one recorded reaction event, as folded by FoldReactions.
type ReactionOp struct {
	EventSeq int64
	UserID   string
	Emoji    string
	Op       string
}

// FoldReactions computes the current reactions of one message from its
// events (any order, repeats allowed): for each (user, emoji) the event with
// the highest seq wins; the emojis still added are ordered by their earliest
// winning add, and each emoji's users by the seq of their add.
func FoldReactions(ops []ReactionOp) []Reaction {
	type key struct{ user, emoji string }
	last := make(map[key]ReactionOp, len(ops))
	for _, o := range ops {
		k := key{o.UserID, o.Emoji}
		if cur, ok := last[k]; !ok || o.EventSeq > cur.EventSeq {
			last[k] = o
		}
	}
	adds := make([]ReactionOp, 0, len(last))
	for _, o := range last {
		if o.Op == ReactionAdd {
			adds = append(adds, o)
		}
	}
	if len(adds) == 0 {
		return nil
	}
	slices.SortFunc(adds, func(a, b ReactionOp) int {
		return cmp.Or(cmp.Compare(a.EventSeq, b.EventSeq), cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Emoji, b.Emoji))
	})
	var out []Reaction
	at := map[string]int{}
	for _, o := range adds {
		i, ok := at[o.Emoji]
		if !ok {
			i = len(out)
			at[o.Emoji] = i
			out = append(out, Reaction{Emoji: o.Emoji})
		}
		out[i].Count++
		out[i].UserIDs = append(out[i].UserIDs, o.UserID)
	}
	return out
}

// Reacted reports whether user is among the reactors of emoji in rs.
func Reacted(rs []Reaction, user, emoji string) bool {
	for _, r := range rs {
		if r.Emoji == emoji {
			return slices.Contains(r.UserIDs, user)
		}
	}
	return false
}
