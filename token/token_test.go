package token

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow"
)

const (
	testIssuer   = "chatflow-test"
	testAudience = "chatflow-test-api"
	testAccess   = 15 * time.Minute
	testRefresh  = 24 * time.Hour
)

// testRedis connects to the Redis the tests run against. The tests need a
// real one: the rotation and revocation logic lives in a Lua script.
func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:16379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		t.Fatalf("redis at %s is not reachable (%v): run `make test`, or start the local services with `scripts/services.sh start` (or set REDIS_ADDR)", addr, err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func testConfig(t *testing.T) Config {
	t.Helper()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	return Config{Secret: secret, Issuer: testIssuer, Audience: testAudience, AccessTTL: testAccess, RefreshTTL: testRefresh}
}

func newService(t *testing.T) *Service {
	t.Helper()
	return New(testConfig(t), testRedis(t))
}

// user returns a fresh random user id, so tests never share Redis state.
func user() string { return uuid.NewString() }

// fixedLookup is a Refresh lookup that always answers the same.
func fixedLookup(username, role string) func(context.Context, string) (string, string, error) {
	return func(context.Context, string) (string, string, error) { return username, role, nil }
}

func issue(t *testing.T, s *Service, uid string) Pair {
	t.Helper()
	p, err := s.Issue(context.Background(), uid, "alice", "user", "")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return p
}

func verifyOK(t *testing.T, s *Service, raw string) *Claims {
	t.Helper()
	c, err := s.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("Verify of a valid access token: %v", err)
	}
	return c
}

// wantCode fails unless err is a domain error with the given code.
func wantCode(t *testing.T, err error, code, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted, want error %q", what, code)
	}
	if got := chatflow.ErrorCode(err); got != code {
		t.Fatalf("%s: error code %q (%v), want %q", what, got, err, code)
	}
}

func wantInvalid(t *testing.T, s *Service, raw, what string) {
	t.Helper()
	_, err := s.Verify(context.Background(), raw)
	wantCode(t, err, chatflow.ECodeInvalidToken, what)
}

// payload decodes a JWT's claims segment into a generic map.
func payload(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS compact token: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload: %v", err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("payload: %v", err)
	}
	return m
}

// validClaims are claims that s would accept as an access token, for
// re-signing with other algorithms or keys.
func validClaims(s *Service, uid string) Claims {
	now := time.Now()
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        uuid.NewString(),
			Subject:   uid,
			Issuer:    s.cfg.Issuer,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
		},
		Username: "mallory", Role: "admin", Family: uuid.NewString(), Kind: KindAccess,
	}
}

func TestIssueAndVerify(t *testing.T) {
	s := newService(t)
	uid := user()
	before := time.Now().Truncate(time.Second)
	p, err := s.Issue(context.Background(), uid, "alice", "moderator", "")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if p.TokenType != "Bearer" || p.ExpiresIn != int(testAccess.Seconds()) {
		t.Errorf("pair meta = %q/%d, want Bearer/%d", p.TokenType, p.ExpiresIn, int(testAccess.Seconds()))
	}
	if p.AccessToken == "" || p.RefreshToken == "" || p.AccessToken == p.RefreshToken {
		t.Fatalf("bad pair: %+v", p)
	}

	c := verifyOK(t, s, p.AccessToken)
	if c.UserID() != uid || c.Subject != uid {
		t.Errorf("sub = %q, want %q", c.Subject, uid)
	}
	if c.Username != "alice" || c.Role != "moderator" {
		t.Errorf("name/role = %q/%q, want alice/moderator", c.Username, c.Role)
	}
	if c.Issuer != testIssuer {
		t.Errorf("iss = %q, want %q", c.Issuer, testIssuer)
	}
	if len(c.Audience) != 1 || c.Audience[0] != testAudience {
		t.Errorf("aud = %v, want [%s]", c.Audience, testAudience)
	}
	if c.Kind != KindAccess || c.ID == "" || c.Family == "" {
		t.Errorf("typ/jti/fid = %q/%q/%q", c.Kind, c.ID, c.Family)
	}
	if c.IssuedAt == nil || c.IssuedAt.Before(before) || c.IssuedAt.After(time.Now()) {
		t.Errorf("iat = %v, want about now", c.IssuedAt)
	}
	if c.ExpiresAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) != testAccess {
		t.Errorf("exp = %v, want iat + %v", c.ExpiresAt, testAccess)
	}

	// The wire format carries the standard claim names.
	m := payload(t, p.AccessToken)
	for _, k := range []string{"sub", "name", "role", "iss", "aud", "exp", "iat", "jti", "fid", "typ"} {
		if _, ok := m[k]; !ok {
			t.Errorf("access token payload lacks %q: %v", k, m)
		}
	}
	if m["sub"] != uid || m["name"] != "alice" || m["role"] != "moderator" || m["iss"] != testIssuer || m["typ"] != KindAccess {
		t.Errorf("access token payload = %v", m)
	}

	// The refresh token belongs to the same family but is a different token.
	rm := payload(t, p.RefreshToken)
	if rm["typ"] != KindRefresh || rm["fid"] != c.Family || rm["jti"] == c.ID || rm["sub"] != uid {
		t.Errorf("refresh token payload = %v (access fid %s jti %s)", rm, c.Family, c.ID)
	}

	// A new login starts a new family.
	p2 := issue(t, s, uid)
	if c2 := verifyOK(t, s, p2.AccessToken); c2.Family == c.Family {
		t.Errorf("two logins share family %s", c.Family)
	}
}

func TestExpiredTokenRejected(t *testing.T) {
	s := newService(t)
	past := New(s.cfg, s.rdb)
	past.now = func() time.Time { return time.Now().Add(-testAccess - time.Minute) }
	p := issue(t, past, user())

	_, err := s.Verify(context.Background(), p.AccessToken)
	wantCode(t, err, chatflow.ECodeInvalidToken, "expired access token")

	// The same token is fine for a clock at its issue time: only expiry rejects it.
	if _, err := past.Verify(context.Background(), p.AccessToken); err != nil {
		t.Fatalf("token rejected at its own issue time: %v", err)
	}

	// An expired refresh token cannot be rotated either.
	past.now = func() time.Time { return time.Now().Add(-testRefresh - time.Minute) }
	p = issue(t, past, user())
	_, err = s.Refresh(context.Background(), p.RefreshToken, fixedLookup("alice", "user"))
	wantCode(t, err, chatflow.ECodeInvalidToken, "expired refresh token")
}

func TestTokenFromTheFutureRejected(t *testing.T) {
	s := newService(t)
	future := New(s.cfg, s.rdb)
	future.now = func() time.Time { return time.Now().Add(time.Hour) }
	p := issue(t, future, user())
	wantInvalid(t, s, p.AccessToken, "token issued an hour from now")
}

func TestTamperedTokenRejected(t *testing.T) {
	s := newService(t)
	p := issue(t, s, user())
	verifyOK(t, s, p.AccessToken)
	parts := strings.Split(p.AccessToken, ".")

	// Payload changed (role escalated), signature kept.
	m := payload(t, p.AccessToken)
	m["role"] = "admin"
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	wantInvalid(t, s, forged, "token with a modified payload")

	// Signature changed: flip the bits of its first byte.
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[0] ^= 0xff
	wantInvalid(t, s, parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(sig), "token with a modified signature")

	// Signature stripped.
	wantInvalid(t, s, parts[0]+"."+parts[1]+".", "token without a signature")

	// Correct claims signed with another secret.
	other := newService(t)
	wantInvalid(t, s, issue(t, other, user()).AccessToken, "token signed with another secret")

	// Garbage.
	wantInvalid(t, s, "not-a-jwt", "garbage")
	wantInvalid(t, s, "", "empty token")
}

func TestAlgNoneRejected(t *testing.T) {
	s := newService(t)
	c := validClaims(s, user())
	raw, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, s, raw, "alg none token")

	// A genuine token whose header is swapped for alg none, signature dropped.
	p := issue(t, s, user())
	parts := strings.Split(p.AccessToken, ".")
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	wantInvalid(t, s, hdr+"."+parts[1]+".", "genuine payload with alg none header")
	wantInvalid(t, s, hdr+"."+parts[1]+"."+parts[2], "genuine payload and signature with alg none header")
}

func TestWrongAlgorithmRejected(t *testing.T) {
	s := newService(t)
	c := validClaims(s, user())

	// Control: the same claims signed HS256 with the secret are accepted,
	// so the rejections below are about the algorithm only.
	ok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.cfg.Secret)
	if err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, ok)

	for _, m := range []*jwt.SigningMethodHMAC{jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
		raw, err := jwt.NewWithClaims(m, c).SignedString(s.cfg.Secret)
		if err != nil {
			t.Fatal(err)
		}
		wantInvalid(t, s, raw, m.Alg()+" token signed with the right secret")
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, s, raw, "RS256 token")
}

func TestWrongIssuerOrAudienceRejected(t *testing.T) {
	s := newService(t)

	cfg := s.cfg
	cfg.Issuer = "someone-else"
	wantInvalid(t, s, issue(t, New(cfg, s.rdb), user()).AccessToken, "token from another issuer")

	cfg = s.cfg
	cfg.Audience = "another-api"
	wantInvalid(t, s, issue(t, New(cfg, s.rdb), user()).AccessToken, "token for another audience")

	// A refresh token for another audience cannot be rotated here either.
	_, err := s.Refresh(context.Background(), issue(t, New(cfg, s.rdb), user()).RefreshToken, fixedLookup("a", "user"))
	wantCode(t, err, chatflow.ECodeInvalidToken, "refresh token for another audience")
}

func TestTokenKindsAreNotInterchangeable(t *testing.T) {
	s := newService(t)
	p := issue(t, s, user())

	wantInvalid(t, s, p.RefreshToken, "refresh token used as access token")

	_, err := s.Refresh(context.Background(), p.AccessToken, fixedLookup("alice", "user"))
	wantCode(t, err, chatflow.ECodeInvalidToken, "access token used as refresh token")

	// Neither misuse burned the genuine tokens.
	verifyOK(t, s, p.AccessToken)
	if _, err := s.Refresh(context.Background(), p.RefreshToken, fixedLookup("alice", "user")); err != nil {
		t.Fatalf("refresh after misuse attempts: %v", err)
	}
}

func TestRefreshTokenNotStoredRejected(t *testing.T) {
	s := newService(t)
	// Validly signed refresh token that Issue never recorded in Redis.
	raw, err := s.signWithID(uuid.NewString(), user(), "alice", "user", uuid.NewString(), KindRefresh, time.Now(), testRefresh)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Refresh(context.Background(), raw, fixedLookup("alice", "user"))
	wantCode(t, err, chatflow.ECodeInvalidToken, "unknown refresh token")
}

func TestRefreshRotationAndReuseDetection(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	uid := user()
	p1 := issue(t, s, uid)
	c1 := verifyOK(t, s, p1.AccessToken)

	// Another session of the same user must survive the revocation below.
	other := issue(t, s, uid)

	// First rotation works, keeps the family and takes the role from lookup.
	var looked []string
	p2, err := s.Refresh(ctx, p1.RefreshToken, func(_ context.Context, id string) (string, string, error) {
		looked = append(looked, id)
		return "alice2", "admin", nil
	})
	if err != nil {
		t.Fatalf("first rotation: %v", err)
	}
	if len(looked) != 1 || looked[0] != uid {
		t.Errorf("lookup calls = %v, want [%s]", looked, uid)
	}
	if p2.RefreshToken == p1.RefreshToken || p2.AccessToken == p1.AccessToken {
		t.Fatal("rotation returned the old tokens")
	}
	c2 := verifyOK(t, s, p2.AccessToken)
	if c2.Family != c1.Family || c2.Subject != uid || c2.Username != "alice2" || c2.Role != "admin" {
		t.Errorf("rotated claims = fid %s sub %s name %s role %s; want fid %s sub %s alice2 admin",
			c2.Family, c2.Subject, c2.Username, c2.Role, c1.Family, uid)
	}
	verifyOK(t, s, p1.AccessToken) // rotation alone does not revoke access tokens

	// The old refresh token now fails: it was used, which means it leaked.
	_, err = s.Refresh(ctx, p1.RefreshToken, fixedLookup("alice", "user"))
	wantCode(t, err, chatflow.ECodeTokenReused, "reused refresh token")

	// ...and the whole family is revoked: the new refresh token, and the access tokens.
	_, err = s.Refresh(ctx, p2.RefreshToken, fixedLookup("alice", "user"))
	wantCode(t, err, chatflow.ECodeInvalidToken, "refresh token of a revoked family")
	wantInvalid(t, s, p2.AccessToken, "new access token of a revoked family")
	wantInvalid(t, s, p1.AccessToken, "old access token of a revoked family")

	// Further replays keep failing.
	_, err = s.Refresh(ctx, p1.RefreshToken, fixedLookup("alice", "user"))
	if err == nil {
		t.Fatal("replayed refresh token accepted after revocation")
	}

	// The user's other session is untouched.
	verifyOK(t, s, other.AccessToken)
	if _, err := s.Refresh(ctx, other.RefreshToken, fixedLookup("alice", "user")); err != nil {
		t.Fatalf("other session's refresh: %v", err)
	}
}

// A failing user lookup (say, a database hiccup) must not burn the refresh
// token: the client's retry with the same token has to work, not be treated
// as a replay that revokes the session.
func TestRefreshLookupFailureDoesNotBurnToken(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	p := issue(t, s, user())
	boom := errors.New("database unavailable")
	_, err := s.Refresh(ctx, p.RefreshToken, func(context.Context, string) (string, string, error) { return "", "", boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Refresh error = %v, want the lookup error", err)
	}
	p2, err := s.Refresh(ctx, p.RefreshToken, fixedLookup("alice", "user"))
	if err != nil {
		t.Fatalf("retry after a failed lookup: %v (code %s)", err, chatflow.ErrorCode(err))
	}
	verifyOK(t, s, p2.AccessToken)
	verifyOK(t, s, p.AccessToken)
}

func TestLogoutRevokesAccessAndRefresh(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	uid := user()
	p := issue(t, s, uid)
	other := issue(t, s, uid)
	c := verifyOK(t, s, p.AccessToken)

	if err := s.Logout(ctx, c); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	wantInvalid(t, s, p.AccessToken, "access token after logout")
	_, err := s.Refresh(ctx, p.RefreshToken, fixedLookup("alice", "user"))
	wantCode(t, err, chatflow.ECodeInvalidToken, "refresh token after logout")

	// Logging out one session leaves the user's other sessions alone.
	verifyOK(t, s, other.AccessToken)
	if _, err := s.Refresh(ctx, other.RefreshToken, fixedLookup("alice", "user")); err != nil {
		t.Fatalf("other session's refresh after logout: %v", err)
	}
}

// Two tabs refreshing with the same token at once: within the grace window
// every caller gets the same new pair, nothing is revoked, and the new
// refresh token rotates normally afterwards.
func TestRefreshGraceWindowSamePair(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.RefreshGrace = 10 * time.Second
	s := New(cfg, testRedis(t))
	var revoked []string
	s.OnRevoke(func(_ context.Context, uid, fid string) { revoked = append(revoked, fid) })
	p := issue(t, s, user())

	const tabs = 8
	pairs := make([]Pair, tabs)
	errs := make([]error, tabs)
	var wg sync.WaitGroup
	for i := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pairs[i], errs[i] = s.Refresh(ctx, p.RefreshToken, fixedLookup("alice", "user"))
		}()
	}
	wg.Wait()
	for i := range tabs {
		if errs[i] != nil {
			t.Fatalf("tab %d: %v (code %s)", i, errs[i], chatflow.ErrorCode(errs[i]))
		}
		if pairs[i] != pairs[0] {
			t.Fatalf("tab %d got a different pair than tab 0", i)
		}
	}
	if len(revoked) != 0 {
		t.Fatalf("family revoked by concurrent refreshes: %v", revoked)
	}
	verifyOK(t, s, pairs[0].AccessToken)
	verifyOK(t, s, p.AccessToken)

	// The new token rotates once; a late replay of the old one inside the
	// window answers the same pair again without reviving the used child.
	p3, err := s.Refresh(ctx, pairs[0].RefreshToken, fixedLookup("alice", "user"))
	if err != nil {
		t.Fatalf("rotating the new token: %v", err)
	}
	again, err := s.Refresh(ctx, p.RefreshToken, fixedLookup("alice", "admin"))
	if err != nil || again != pairs[0] {
		t.Fatalf("replay inside the window: %v, same pair %v", err, again == pairs[0])
	}
	verifyOK(t, s, p3.AccessToken)
}

// Outside the grace window a replay is reuse: the family is revoked and
// OnRevoke hears about it (so the api closes the family's sockets).
func TestRefreshReuseAfterGraceRevokesAndNotifies(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.RefreshGrace = 10 * time.Second
	s := New(cfg, testRedis(t))
	type rev struct{ uid, fid string }
	var got []rev
	s.OnRevoke(func(_ context.Context, uid, fid string) { got = append(got, rev{uid, fid}) })
	uid := user()
	p := issue(t, s, uid)
	c := verifyOK(t, s, p.AccessToken)
	p2, err := s.Refresh(ctx, p.RefreshToken, fixedLookup("alice", "user"))
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Now().Add(11 * time.Second) }
	_, err = s.Refresh(ctx, p.RefreshToken, fixedLookup("alice", "user"))
	wantCode(t, err, chatflow.ECodeTokenReused, "replay after the grace window")
	s.now = time.Now
	wantInvalid(t, s, p2.AccessToken, "access token of the revoked family")
	if len(got) != 1 || got[0] != (rev{uid, c.Family}) {
		t.Fatalf("OnRevoke calls = %v, want one for %s/%s", got, uid, c.Family)
	}

	// Logout reports its revocation too.
	other := issue(t, s, uid)
	oc := verifyOK(t, s, other.AccessToken)
	if err := s.Logout(ctx, oc); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != (rev{uid, oc.Family}) {
		t.Fatalf("OnRevoke after logout = %v", got)
	}
	if r, err := s.Revoked(ctx, oc.Family, oc.ID); err != nil || !r {
		t.Fatalf("Revoked after logout = %v, %v", r, err)
	}
}
