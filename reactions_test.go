package chatflow

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestFoldReactions(t *testing.T) {
	add := func(seq int64, user, emoji string) ReactionOp { return ReactionOp{seq, user, emoji, ReactionAdd} }
	rm := func(seq int64, user, emoji string) ReactionOp { return ReactionOp{seq, user, emoji, ReactionRemove} }
	ops := []ReactionOp{
		add(10, "u1", "👍"),
		add(11, "u2", "👍"),
		add(12, "u1", "❤️"),
		rm(13, "u1", "👍"), // u1 takes 👍 back
		add(14, "u3", "🎉"),
		rm(15, "u3", "🎉"),  // 🎉 is gone entirely
		add(16, "u1", "👍"), // and u1 puts 👍 back, now after u2
		rm(9, "u2", "👍"),   // older than u2's add: loses
		add(17, "u3", "❤️"),
	}
	want := []Reaction{
		{Emoji: "👍", Count: 2, UserIDs: []string{"u2", "u1"}},
		{Emoji: "❤️", Count: 2, UserIDs: []string{"u1", "u3"}},
	}
	if got := FoldReactions(ops); !reflect.DeepEqual(got, want) {
		t.Fatalf("fold: %+v\nwant %+v", got, want)
	}
	// order-free and idempotent: any permutation, each event applied many times
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var in []ReactionOp
		for _, o := range ops {
			for range 1 + r.IntN(3) {
				in = append(in, o)
			}
		}
		r.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		if got := FoldReactions(in); !reflect.DeepEqual(got, want) {
			t.Fatalf("fold of %v: %+v\nwant %+v", in, got, want)
		}
	}
	if got := FoldReactions(nil); got != nil {
		t.Fatalf("fold of nothing: %+v", got)
	}
	if got := FoldReactions([]ReactionOp{add(1, "u", "x"), rm(2, "u", "x")}); got != nil {
		t.Fatalf("removed reaction still there: %+v", got)
	}
	if !Reacted(FoldReactions(ops), "u3", "❤️") || Reacted(FoldReactions(ops), "u3", "🎉") || Reacted(nil, "u1", "👍") {
		t.Fatal("Reacted")
	}
}

func TestValidEmoji(t *testing.T) {
	for _, ok := range []string{"👍", "❤️", "👨‍👩‍👧", "🇰🇷", "+1", "ok", strings.Repeat("a", 8)} {
		if err := ValidEmoji(ok); err != nil {
			t.Errorf("ValidEmoji(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", " ", "👍 ", "a\tb", "\x00", "\u200b\u00a0", "a\nb", strings.Repeat("a", 9),
		"\xff", strings.Repeat("👍", 9), strings.Repeat("👨‍👩‍👧", 2), "\u0085"} {
		if err := ValidEmoji(bad); err == nil || ErrorCode(err) != ECodeValidation {
			t.Errorf("ValidEmoji(%q) = %v, want validation_failed", bad, err)
		}
	}
}
