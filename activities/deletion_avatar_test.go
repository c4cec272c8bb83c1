package activities

import (
	"context"
	"sync"
	"testing"
)

// fakeObjects records the object-store deletes of the anonymize step.
type fakeObjects struct {
	mu      sync.Mutex
	deleted []string
}

func (f *fakeObjects) Delete(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, key)
	return nil
}

// The anonymize step clears the avatar and deletes its object; a retry
// finds no avatar and deletes nothing more.
func TestDeletionAnonymizeClearsAvatar(t *testing.T) {
	f := newDeletionFixture(t)
	ctx := context.Background()
	key := "avatars/" + f.in.UserID.String() + "/x.jpg"
	if _, err := f.a.Pool.Exec(ctx, `UPDATE chat.profiles SET avatar_key = $2, avatar_version = 3 WHERE user_id = $1`, f.in.UserID, key); err != nil {
		t.Fatal(err)
	}
	objs := &fakeObjects{}
	f.a.Objects = objs
	for range 2 {
		if err := f.a.AnonymizeProfile(ctx, f.in); err != nil {
			t.Fatal(err)
		}
	}
	p, err := f.a.Queries.GetProfile(ctx, f.in.UserID)
	if err != nil || p.AvatarKey != nil {
		t.Fatalf("avatar_key after anonymize: %v (%v)", p.AvatarKey, err)
	}
	if len(objs.deleted) != 1 || objs.deleted[0] != key {
		t.Fatalf("store deletes %v, want one of %s", objs.deleted, key)
	}
}
