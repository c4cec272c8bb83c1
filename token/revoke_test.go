package token

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chatflow/chatflow"
)

// RevokeUser ends every session of the user but the kept one, at once for
// access tokens and for refresh, and reports each family to OnRevoke.
func TestRevokeUserKeepsOnlyTheKeptSession(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	var mu sync.Mutex
	reported := map[string]bool{}
	s.OnRevoke(func(_ context.Context, _, family string) { mu.Lock(); reported[family] = true; mu.Unlock() })
	uid, other := user(), user()
	a, b, c := issue(t, s, uid), issue(t, s, uid), issue(t, s, uid)
	o := issue(t, s, other)
	keep := verifyOK(t, s, a.AccessToken).Family
	if err := s.RevokeUser(ctx, uid, keep); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, a.AccessToken)
	verifyOK(t, s, o.AccessToken) // another user's session is untouched
	for _, p := range []Pair{b, c} {
		wantInvalid(t, s, p.AccessToken, "access token of a revoked session")
		_, err := s.Refresh(ctx, p.RefreshToken, fixedLookup("alice", "user"))
		wantCode(t, err, chatflow.ECodeInvalidToken, "refresh of a revoked session")
	}
	if _, err := s.Refresh(ctx, a.RefreshToken, fixedLookup("alice", "user")); err != nil {
		t.Fatalf("refresh of the kept session: %v", err)
	}
	mu.Lock()
	n, kept := len(reported), reported[keep]
	mu.Unlock()
	if n != 2 || kept {
		t.Fatalf("OnRevoke told about %d families (kept one: %v), want the two others", n, kept)
	}
	// a second revocation without a kept session ends the last one too
	if err := s.RevokeUser(ctx, uid, ""); err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, s, a.AccessToken, "access token after revoking all")
}

// A login whose credentials were checked before a RevokeUser gets no
// session, whichever of the two reaches Redis first; one checked after it
// does.
func TestIssueAfterRevocationIsRefused(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	uid := user()
	checked := time.Now()
	time.Sleep(2 * time.Millisecond)
	if err := s.RevokeUser(ctx, uid, ""); err != nil {
		t.Fatal(err)
	}
	_, err := s.IssueAfter(ctx, checked, uid, "alice", "user", "")
	wantCode(t, err, chatflow.ECodeInvalidCredentials, "login checked before the revocation")
	time.Sleep(2 * time.Millisecond)
	p, err := s.IssueAfter(ctx, time.Now(), uid, "alice", "user", "")
	if err != nil {
		t.Fatalf("login after the revocation: %v", err)
	}
	verifyOK(t, s, p.AccessToken)
}

// Logins racing a revocation: every session that exists afterwards was
// either refused or revoked, unless its credentials were checked after.
func TestRevokeUserRacesLogins(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	uid := user()
	checked := time.Now()
	time.Sleep(2 * time.Millisecond)
	var wg sync.WaitGroup
	pairs := make([]Pair, 50)
	for i := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pairs[i], _ = s.IssueAfter(ctx, checked, uid, "alice", "user", "")
		}()
	}
	if err := s.RevokeUser(ctx, uid, ""); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, p := range pairs {
		if p.AccessToken == "" {
			continue // refused
		}
		if _, err := s.Verify(ctx, p.AccessToken); err == nil {
			t.Fatalf("login %d checked before the revocation still has a valid session", i)
		}
	}
}
